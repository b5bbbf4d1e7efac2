"""ENAS on MNIST-1D over several seeds: search time, total time, retrained test accuracy, size.

Runs ``examples/mnist1d-enas-macro.yaml`` (or --spec) end to end through the same code as
``nas search``, once per seed, and prints mean and spread. Target (issue 3): <= 10 min wall
including the final retrain, >= 99.0 % mean test accuracy over 3 seeds, <= 100k parameters.

    .venv/bin/python bench/enas_mnist1d.py [--spec SPEC] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nas.spec import load_spec_file
from workers.search import parse_spec
from workers.local import run_local_search

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "examples/mnist1d-enas-macro.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        spec = load_spec_file(args.spec)
        spec["seed"] = seed
        resolved = parse_spec(spec)
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            summary = run_local_search(resolved, Path(out), progress=False)
            total = time.perf_counter() - started
        final = summary["final"][0]
        rows.append({
            "seed": seed,
            "search_s": summary["wall_time_s"],
            "total_s": total,
            "test_accuracy": final["test_accuracy"],
            "params": final["params"],
            "genotype": final["genotype"],
        })
        print(f"seed {seed}: search {summary['wall_time_s']:.1f} s, total {total:.1f} s, "
              f"test {final['test_accuracy']:.2f} %, params {final['params']}", flush=True)

    def spread(key: str) -> str:
        values = [r[key] for r in rows]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return (f"mean {statistics.mean(values):.2f} +- {std:.2f} (median {statistics.median(values):.2f}, "
                f"min {min(values):.2f}, max {max(values):.2f})")

    print(f"\n{len(rows)} seeds, spec {args.spec}")
    print(f"search time (s): {spread('search_s')}")
    print(f"total time incl. retrain (s): {spread('total_s')}  target <= 600")
    print(f"test accuracy (%): {spread('test_accuracy')}  target mean >= 99.0")
    print(f"parameters: {spread('params')}  target <= 100000")
    ok = (max(r["total_s"] for r in rows) <= 600
          and statistics.mean(r["test_accuracy"] for r in rows) >= 99.0
          and max(r["params"] for r in rows) <= 100_000)
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
