"""A run's identity: a fingerprint of what defines its result, kept in the run directory from its start.

A sweep, a study or `train --resume` reuses or continues a run only when the fingerprint it would
write now equals the one the run wrote; otherwise it refuses, naming the first key that differs.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from kerasdrop._files import atomic_write_text
from kerasdrop.errors import RunDirectoryError
from kerasdrop.training.artifacts import FINGERPRINT_FILE
from kerasdrop.training.recipe import Recipe, RecipeError, load_recipe

# The way out of a refused run, in a sweep's and a study's error line.
OVERWRITE_HINT = "Use another --out, or --overwrite to train the runs of other settings again."

# Recipe keys that do not change what a run computes: where the data files are found, whether a
# download is allowed, what the run is expected to reach, and how many threads an op may use (a
# study's worker processes set 1; results then agree within float rounding, bench/train_throughput.py).
NOT_IDENTITY_KEYS = ("data.data_dir", "data.offline", "training.cpu_threads")
NOT_IDENTITY_SECTIONS = ("expect",)


class RunMismatchError(RunDirectoryError):
    """A run directory holds a run of other settings than the ones asked for; nothing in it was changed."""


def run_fingerprint(recipe: Recipe, dataset: dict | None = None) -> dict:
    """`{key: value}` of everything that defines a run's result, in a fixed order (recipe, split, data, code).

    Args:
        recipe: the resolved recipe.
        dataset: the data set's identity (`kerasdrop.data.dataset_identity`), when the caller has it.
    """
    from kerasdrop import __version__
    from kerasdrop.data import dataset_identity

    values = {}
    for section in dataclasses.fields(recipe):
        if section.name in NOT_IDENTITY_SECTIONS:
            continue
        for key, value in dataclasses.asdict(getattr(recipe, section.name)).items():
            if f"{section.name}.{key}" not in NOT_IDENTITY_KEYS:
                values[f"{section.name}.{key}"] = value
    # The split: what decides which example is a training, validation or test example.
    data = recipe.data
    values["split.seed"] = recipe.training.seed if data.split_seed is None else data.split_seed
    if dataset is None:
        dataset = dataset_identity(data.dataset, data_dir=data.data_dir)
    values.update({f"dataset.{key}": value for key, value in dataset.items()})
    values["code.kerasdrop"] = __version__
    return json.loads(json.dumps(values))  # as read back from the file: lists, not tuples


def write_fingerprint(run_dir: pathlib.Path, fingerprint: dict) -> None:
    atomic_write_text(run_dir / FINGERPRINT_FILE, json.dumps(fingerprint, indent=2) + "\n")


def recorded_fingerprint(run_dir: pathlib.Path, dataset: dict | None = None) -> dict | None:
    """The fingerprint a run wrote; for a run from before fingerprints, the one of its recipe.toml.

    None: `run_dir` holds no run.
    """
    path = run_dir / FINGERPRINT_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RunDirectoryError(
                f"{path} is unreadable ({error}); the run's identity is unknown. "
                "Use another --out, or --overwrite to train it again."
            ) from None
    if not (run_dir / "recipe.toml").is_file():
        return None
    import tomllib

    try:
        recipe = load_recipe(run_dir / "recipe.toml")
        version = tomllib.loads((run_dir / "recipe.toml").read_text()).get("provenance", {}).get("kerasdrop")
    except RecipeError as error:
        raise RunDirectoryError(
            f"{run_dir} holds a run whose recipe.toml cannot be read ({error}). "
            "Use another --out, or --overwrite to train it again."
        ) from None
    fingerprint = run_fingerprint(recipe, dataset)
    fingerprint["code.kerasdrop"] = version
    return fingerprint


def first_difference(recorded: dict, wanted: dict) -> tuple[str, object, object] | None:
    """`(key, recorded value, wanted value)` of the first key (in `wanted`'s order) whose values differ."""
    for key in [*wanted, *(key for key in recorded if key not in wanted)]:
        if recorded.get(key, "(absent)") != wanted.get(key, "(absent)"):
            return key, recorded.get(key, "(absent)"), wanted.get(key, "(absent)")
    return None


def check_reusable(run_dir: pathlib.Path, wanted: dict, *, way_out: str) -> bool:
    """True when `run_dir` holds a run of exactly `wanted`'s fingerprint; False when it holds no run.

    Raises:
        RunMismatchError: it holds a run of other settings (one line: the first differing key, then
            `way_out`).
    """
    recorded = recorded_fingerprint(run_dir, _dataset_part(wanted))
    if recorded is None:
        return False
    difference = first_difference(recorded, wanted)
    if difference is None:
        return True
    key, old, new = difference
    raise RunMismatchError(
        f"{run_dir} holds a run of other settings: {key} is {old!r} there, {new!r} now. {way_out}"
    )


def check_resumable(run_dir: pathlib.Path, recipe: Recipe) -> None:
    """Refuses to resume a run whose recipe.toml (or data set, or code) changed since it started."""
    recorded = recorded_fingerprint(run_dir)
    wanted = run_fingerprint(recipe)
    difference = None if recorded is None else first_difference(recorded, wanted)
    if difference is None:
        return
    key, old, new = difference
    what = (
        "recipe.toml"
        if key.partition(".")[0] in ("model", "data", "training", "split")
        else "what it depends on"
    )
    raise RunMismatchError(
        f"--resume: {run_dir} changed since the run started ({what}): {key} was {old!r}, is {new!r} now; a "
        f"resumed run keeps the settings and data split it started with. Restore {key}, or start a new run "
        f"with another --out (or --overwrite to replace this one)."
    )


def _dataset_part(fingerprint: dict) -> dict:
    return {key.partition(".")[2]: value for key, value in fingerprint.items() if key.startswith("dataset.")}


def claim_run_directories(jobs, *, overwrite: bool, way_out: str = OVERWRITE_HINT) -> None:
    """Before a study trains anything: each `(run_dir, recipe)` whose directory holds a run must hold a run
    of that recipe; with `overwrite`, one of other settings is removed (to be trained again) instead.

    Raises:
        RunMismatchError: the first run of other settings, when not `overwrite`; nothing was changed.
    """
    from kerasdrop.data import dataset_identity
    from kerasdrop.training.run import remove_run_files

    identities: dict[tuple, dict] = {}  # each data set's identity read once, not once per run
    mismatched = []
    for run_dir, recipe in jobs:
        if not run_dir.exists():
            continue
        source = (recipe.data.dataset, recipe.data.data_dir)
        if source not in identities:
            identities[source] = dataset_identity(recipe.data.dataset, data_dir=recipe.data.data_dir)
        try:
            check_reusable(run_dir, run_fingerprint(recipe, identities[source]), way_out=way_out)
        except RunMismatchError:
            if not overwrite:
                raise
            mismatched.append(run_dir)
    for run_dir in mismatched:
        remove_run_files(run_dir, keep_directory=False)
