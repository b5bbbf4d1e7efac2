"""ENAS against random search on the same space, data and wall budget.

ENAS runs ``examples/mnist1d-enas-macro.yaml`` (shared weights). Random search then gets the
same wall time ENAS's search took, over the same space and data, each child trained from
scratch with the standalone evaluator (``--random-epochs`` each). Both best architectures are
retrained with the same ``final:`` recipe; the script prints test accuracy, parameters and
how many architectures each method evaluated.

    .venv/bin/python bench/enas_vs_random.py [--seed 0] [--random-epochs 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _args import description, existing_file, non_negative_int, one_line, positive_int

from nas.errors import SpecError
from nas.spec import load_spec_file
from workers.local import run_local_search
from workers.search import parse_spec

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--spec",
        type=existing_file,
        default=str(REPO / "examples/mnist1d-enas-macro.yaml"),
        help="ENAS job spec (default: examples/mnist1d-enas-macro.yaml)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="(default 0)")
    parser.add_argument(
        "--random-epochs",
        type=positive_int,
        default=8,
        help="standalone epochs of each random child (default 8)",
    )
    args = parser.parse_args()
    try:  # checked before any work
        enas_spec = load_spec_file(args.spec)
        enas_spec["seed"] = args.seed
        parse_spec(enas_spec)
    except SpecError as error:
        parser.error(f"--spec {args.spec}: {one_line(error)}")
    with tempfile.TemporaryDirectory() as out:
        enas = run_local_search(parse_spec(enas_spec), Path(out), progress=False)
    budget_min = enas["wall_time_s"] / 60.0
    random_spec = {
        **enas_spec,
        "name": "random-same-budget",
        "controller": {"name": "random"},
        "evaluator": {
            "name": "standalone",
            "epochs": args.random_epochs,
            "batch_size": enas_spec["evaluator"].get("batch_size", 128),
        },
        "budget": {"minutes": budget_min},
    }
    with tempfile.TemporaryDirectory() as out:
        rand = run_local_search(parse_spec(random_spec), Path(out), progress=False)
    print(f"same space and data, seed {args.seed}, search wall budget {enas['wall_time_s']:.1f} s")
    print(f"{'method':28s} {'evaluated':>10s} {'search s':>9s} {'test %':>7s} {'params':>8s}")
    for label, s in (
        ("ENAS (shared weights)", enas),
        (f"random ({args.random_epochs} ep standalone)", rand),
    ):
        final = s["final"][0]
        print(
            f"{label:28s} {s['trials']:>10d} {s['wall_time_s']:>9.1f} "
            f"{final['test_accuracy']:>7.2f} {final['params']:>8d}"
        )


if __name__ == "__main__":
    main()
