"""The ``nas`` command line.

Subcommands import what they need when they run, so ``nas --help`` stays fast and the library
(``nas``) does not depend on the service or the workers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nas.errors import NasError


def _cmd_search(args: argparse.Namespace) -> int:
    from nas.spec import load_spec_file, parse_spec
    from workers.local import default_run_dir, run_local_search

    resolved = parse_spec(load_spec_file(args.spec))
    out = Path(args.out) if args.out else default_run_dir(resolved)
    summary = run_local_search(resolved, out, progress=not args.quiet)
    best = summary["best"]
    print(f"run directory: {out}")
    print(
        f"trials: {summary['trials']} ({summary['stop_reason']}), wall {summary['wall_time_s']} s"
    )
    if best is None:
        print("no trial completed")
        return 1
    trial = f"trial {best['trial']} " if "trial" in best else ""
    print(f"best: {trial}{json.dumps(best['objective'])}")
    if best["final_metrics"]:
        print(f"final: {json.dumps(best['final_metrics'])}")
    if "final" in best:
        final = best["final"]
        print(
            f"retrained: test_accuracy={final['test_accuracy']:.2f} params={final['params']} "
            f"flops={final['flops']} weights={final.get('weights', '-')}"
        )
    print(f"genotype: {json.dumps(best['genotype'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Neural architecture search and hyperparameter optimisation."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="run one search in this process")
    search.add_argument("spec", help="job spec, YAML or JSON")
    search.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(func=_cmd_search)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except NasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
