"""A run directory: what `train` writes (`Run`), where (`default_run_dir`), and its recipe with provenance.

Only the chief process writes it; a directory is used only when new or empty, or to resume.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import platform
import re
import shutil
import sys

from kerasdrop.errors import RunDirectoryError
from kerasdrop.training.recipe import Recipe, load_recipe

DEFAULT_RUNS_DIR = "runs"


@dataclasses.dataclass
class Run:
    """A finished training run: where it is and what it measured."""

    directory: pathlib.Path
    recipe: Recipe
    metrics: dict
    history: list[dict]

    @property
    def model(self):
        """The final model (`model.keras`), loaded in safe mode."""
        import keras

        return keras.saving.load_model(self.directory / "model.keras")

    @property
    def best_model(self):
        """The checkpoint with the best `training.monitor` (`best.keras`)."""
        import keras

        return keras.saving.load_model(self.directory / "best.keras")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Run:
        directory = pathlib.Path(directory)
        if not (directory / "metrics.json").is_file():
            raise RunDirectoryError(f"{directory} holds no finished run (no metrics.json).")
        import json

        return cls(
            directory,
            load_recipe(directory / "recipe.toml"),
            json.loads((directory / "metrics.json").read_text()),
            json.loads((directory / "history.json").read_text()),
        )


def default_run_dir(recipe: Recipe, runs_dir: str = DEFAULT_RUNS_DIR) -> pathlib.Path:
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe.data.dataset).strip("-")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path(runs_dir) / f"{recipe.model.name.replace(':', '-')}-{dataset}-{stamp}"


def holds_run(directory: pathlib.Path) -> bool:
    """Whether `directory` holds a run (finished or not) that `train` wrote."""
    from kerasdrop.training.artifacts import FINGERPRINT_FILE

    return (directory / "recipe.toml").is_file() or (directory / FINGERPRINT_FILE).is_file()


def prepare_run_dir(out: pathlib.Path, *, resume: bool, chief: bool, overwrite: bool = False) -> None:
    if resume:
        if not (out / "recipe.toml").is_file():
            raise RunDirectoryError(
                f"--resume: {out} holds no run to resume (no recipe.toml). Start it without --resume."
            )
        if (out / "metrics.json").is_file():
            raise RunDirectoryError(
                f"--resume: the run in {out} already finished (metrics.json exists); nothing to resume."
            )
        return
    if not chief:
        return  # other workers write to scratch space; the chief checks and creates the directory
    if overwrite and out.is_dir() and holds_run(out):
        remove_run_files(out, keep_directory=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if out.is_dir() and holds_run(out):
            raise RunDirectoryError(
                f"Run directory {out} already exists and is not empty; nothing in it "
                "was changed. It holds a run: --resume continues it, --overwrite "
                "replaces it, or choose another --out."
            )
        raise RunDirectoryError(
            f"Run directory {out} already exists and is not empty; nothing in it was changed. "
            f"Use --resume to continue that run, or choose another --out."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunDirectoryError(
            f"Cannot write the run directory {out}: {error.strerror or error}. Choose a writable --out."
        ) from None


def remove_run_files(out: pathlib.Path, *, keep_directory: bool) -> bool:
    if not out.is_dir():
        return False
    for entry in out.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if not keep_directory:
        out.rmdir()
    return True


def provenance(recipe: Recipe) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from kerasdrop import __version__
    from kerasdrop.training.cpu import cpu_info, training_threads

    cpu = cpu_info()
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "seed": recipe.training.seed,
        "kerasdrop": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        # The speed and, under mixed_bfloat16, the arithmetic depend on the CPU: native bfloat16
        # (AVX512-BF16 / AMX) or emulated, and how many threads each op was split over.
        "cpu": {
            **cpu.to_dict(),
            "tensorflow_threads": training_threads(),
            "bfloat16": (
                "not used"
                if recipe.training.precision == "float32"
                else "native"
                if cpu.native_bfloat16
                else "emulated"
            ),
        },
    }


def write_recipe(recipe: Recipe, path: pathlib.Path, extra: dict | None = None) -> None:
    import tomli_w

    data = recipe.to_dict()
    if extra:
        data.update(extra)
    path.write_text(
        "# Fully resolved by kerasdrop train: `kerasdrop train recipe.toml` reproduces this run.\n"
        + tomli_w.dumps(data)
    )


def summarise_runs(rate: float, runs: list[Run], columns) -> dict:
    """One rate's runs (one per seed): each run's `columns` from metrics.json, and their mean and sd."""
    import statistics

    entry = {"rate": rate, "runs": [], "mean": {}, "sd": {}}
    for run in runs:
        entry["runs"].append(
            {
                "directory": str(run.directory),
                "seed": run.recipe.training.seed,
                **{column: run.metrics[column] for column in columns},
            }
        )
    for column in columns:
        values = [run.metrics[column] for run in runs]
        entry["mean"][column] = statistics.fmean(values)
        entry["sd"][column] = statistics.stdev(values) if len(values) > 1 else 0.0
    return entry
