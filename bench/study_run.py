"""Runs of the data-size study, each timed on the old path and the new one, side by side in one process.

Old path: every run builds, compiles and traces its own model (what `kerasdrop sweep --train-sizes`
did before) and writes best.keras at each improvement. New path: the runs share one
`TrainingSession` (one compiled model per rate, traced once; the split loaded once) and write
best.keras once. A few runs of the MLP study (not all 36), alternating old and new, then the totals
and their ratio; the new path's first run pays the one compile and trace of its session. Both paths
read a subset's labels in batches (the old code read them example by example, slower still).

    .venv/bin/python bench/study_run.py [--recipe models/mlp_digits.toml] [--sizes 100,all] [--seeds 2]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="models/mlp_digits.toml")
    parser.add_argument("--sizes", default="100,all", help="training-subset sizes (default: 100,all)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per size (default: 2)")
    parser.add_argument("--rate", type=float, default=0.5, help="dropout rate (default: 0.5)")
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kerasdrop.training import train
    from kerasdrop.training.session import TrainingSession

    session = TrainingSession()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-bench-"))
    totals = {"old": 0.0, "new": 0.0}
    try:
        for size in [None if size == "all" else int(size) for size in args.sizes.split(",")]:
            for seed in range(args.seeds):
                overrides = [
                    ("model.dropout", args.rate),
                    ("training.seed", seed),
                    ("data.train_size", size),
                    ("data.split_seed", 0),
                ]
                seconds, accuracy = {}, {}
                for path in ("old", "new"):
                    out = scratch / f"{path}-{size}-{seed}"
                    started = time.perf_counter()
                    run = train(
                        args.recipe,
                        out=out,
                        verbose=0,
                        backup=False,
                        overrides=overrides,
                        session=session if path == "new" else None,
                    )
                    seconds[path] = time.perf_counter() - started
                    accuracy[path] = run.metrics["test_accuracy"]
                    totals[path] += seconds[path]
                    shutil.rmtree(out)
                same = (
                    "same test accuracy" if accuracy["old"] == accuracy["new"] else "DIFFERENT test accuracy"
                )
                print(
                    f"size {size or 'all'}, seed {seed}: old {seconds['old']:5.1f} s   new {seconds['new']:5.1f} s   "
                    f"ratio {seconds['old'] / seconds['new']:.2f}x   ({same}: {accuracy['new']:.4f})",
                    flush=True,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.recipe}, dropout {args.rate:g}: {args.sizes} x {args.seeds} seeds: old path {totals['old']:.1f} s, "
        f"new path {totals['new']:.1f} s ({session.models_compiled} model compiled); "
        f"ratio old/new {totals['old'] / totals['new']:.2f}x"
    )


if __name__ == "__main__":
    main()
