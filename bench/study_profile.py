"""Where one run of the data-size study spends its time, old path vs new path, profiled in one process.

Times the process's TensorFlow import, then profiles (cProfile) one MLP run of the study on each
path, after a warm-up run of each, and splits each run's wall time into phases: loading the data,
building (and, on the old path, compiling) the model, tracing `fit`/`evaluate`, executing the traced
functions (fit and the final evaluation), writing best.keras and model.keras, the curves figure,
and the rest (Keras' Python loop, callbacks, JSON and CSV). Old path: each run builds, compiles and traces its own
model; new path: the runs share a `TrainingSession` (bench/study_run.py times both over several runs).

    .venv/bin/python bench/study_profile.py [--recipe models/mlp_digits.toml] [--size 100]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pathlib
import pstats
import shutil
import tempfile
import time

# Phase -> functions (file suffix, name) whose cumulative time is the phase's.
PHASES = {
    "load data (split, subset, pipelines)": [
        ("kerasdrop/training/build.py", "recipe_datasets"),
        ("kerasdrop/training/session.py", "datasets"),
    ],
    "build (+ compile) the model": [("kerasdrop/training/session.py", "compiled_model")],
    "trace fit/evaluate functions": [("tracing_compilation.py", "_maybe_define_function")],
    "execute traced functions": [("~", "<built-in method tensorflow.python._pywrap_tfe.TFE_Py_Execute>")],
    "save best.keras and model.keras": [("keras/src/models/model.py", "save")],
    "curves.png": [("kerasdrop/training/artifacts.py", "plot_curves")],
}


def phase_seconds(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile).stats
    seconds = {}
    for phase, functions in PHASES.items():
        seconds[phase] = sum(
            (own if name.startswith("<built-in") else cumulative)
            for (path, _, name), (_, _, own, cumulative, _) in stats.items()
            for suffix, wanted in functions
            if path.endswith(suffix) and name == wanted
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="models/mlp_digits.toml")
    parser.add_argument("--size", default="100", help="training-subset size or 'all' (default: 100)")
    args = parser.parse_args()

    started = time.perf_counter()
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras  # noqa: F401  (its import is part of every run's start-up)

    start_up = time.perf_counter() - started
    from kerasdrop.training import train
    from kerasdrop.training.session import TrainingSession

    size = None if args.size == "all" else int(args.size)
    session = TrainingSession()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-profile-"))
    rows = {}
    try:
        for path in ("old", "new"):
            for seed in (0, 1):  # seed 0 warms the process (and, on the new path, the session) up
                profile = cProfile.Profile()
                begun = time.perf_counter()
                profile.enable()
                train(
                    args.recipe,
                    out=scratch / f"{path}-{seed}",
                    verbose=0,
                    backup=False,
                    session=session if path == "new" else None,
                    overrides=[
                        ("model.dropout", 0.5),
                        ("training.seed", seed),
                        ("data.train_size", size),
                        ("data.split_seed", 0),
                    ],
                )
                profile.disable()
                wall = time.perf_counter() - begun
            seconds = phase_seconds(profile)
            seconds["rest (Keras' loop, callbacks, JSON)"] = wall - sum(seconds.values())
            seconds["one run, wall"] = wall
            rows[path] = seconds
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.recipe}, dropout 0.5, {args.size} training examples, one run after a warm-up run; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"  process start-up: TensorFlow + Keras import {start_up:.1f} s (once per study process, either path)"
    )
    print(f"  {'phase':44s} {'old path':>9s} {'new path':>9s}")
    for phase in rows["old"]:
        print(f"  {phase:44s} {rows['old'][phase]:8.2f}s {rows['new'][phase]:8.2f}s")
    print(f"  ratio old/new (one run): {rows['old']['one run, wall'] / rows['new']['one run, wall']:.2f}x")


if __name__ == "__main__":
    main()
