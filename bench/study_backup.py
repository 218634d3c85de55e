"""One run of a study, with and without the per-epoch backup, side by side in one process.

The data-size study trains 36 short runs; each run's `fit` saves a backup (training/checkpoint.py) every
epoch (so `kerasdrop train --resume` can continue it). Study runs skip it and are retrained if
interrupted. This times `train` of the MLP 512-512 recipe on digits (30 epochs) both ways, in
interleaved rounds, and prints every round and the ratio of the best of each.

    .venv/bin/python bench/study_backup.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (default: 2)")
    parser.add_argument("--recipe", default="models/mlp_digits.toml")
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kerasdrop.training import train

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-bench-"))
    best = {True: float("inf"), False: float("inf")}
    try:
        for round_index in range(args.rounds):
            for backup in (True, False):
                out = scratch / f"{round_index}-{backup}"
                started = time.perf_counter()
                run = train(
                    args.recipe, out=out, verbose=0, backup=backup, overrides=[("model.dropout", 0.5)]
                )
                seconds = time.perf_counter() - started
                best[backup] = min(best[backup], seconds)
                print(
                    f"round {round_index + 1}: backup={'on ' if backup else 'off'}  {seconds:6.1f} s per run "
                    f"(fit {run.metrics['seconds']:.1f} s, test accuracy {run.metrics['test_accuracy']:.4f})"
                )
                shutil.rmtree(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.recipe}: best of {args.rounds}: with backup {best[True]:.1f} s, without {best[False]:.1f} s per run; "
        f"ratio {best[True] / best[False]:.2f}x"
    )


if __name__ == "__main__":
    main()
