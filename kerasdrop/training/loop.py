"""`train(recipe) -> Run`: the fit loop with its callbacks, writing a self-contained run directory.

Reads top to bottom: resolve the recipe and run directory, seed everything, load data, build and
compile inside the strategy scope, fit (resumable), then write the final model, history, metrics
and curves. Only the chief process writes the run directory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import math
import os
import pathlib
import platform
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Sequence

from kerasdrop._keras_compat import MULTI_WORKER_STEPS_PER_EXECUTION, multi_worker_fit
from kerasdrop.errors import RunDirectoryError, TrainingDivergedError
from kerasdrop.training import artifacts
from kerasdrop.training.recipe import Recipe, RecipeError, check_recipe, load_recipe, recipe_from_dict

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
    def load(cls, directory: str | os.PathLike) -> "Run":
        directory = pathlib.Path(directory)
        if not (directory / "metrics.json").is_file():
            raise RunDirectoryError(f"{directory} holds no finished run (no metrics.json).")
        import json

        return cls(directory, load_recipe(directory / "recipe.toml"),
                   json.loads((directory / "metrics.json").read_text()),
                   json.loads((directory / "history.json").read_text()))


def resolve_recipe(recipe_or_kwargs: Recipe | str | os.PathLike | dict | None, overrides: Sequence[tuple[str, Any]] = ()) -> Recipe:
    """A Recipe from a Recipe, a TOML path, or a dict (nested sections or bare keys), plus overrides."""
    if isinstance(recipe_or_kwargs, Recipe):
        recipe = copy.deepcopy(recipe_or_kwargs)  # overrides must never change the caller's recipe
    elif isinstance(recipe_or_kwargs, (str, os.PathLike)):
        recipe = load_recipe(recipe_or_kwargs)
    elif isinstance(recipe_or_kwargs, dict) or recipe_or_kwargs is None:
        data = recipe_or_kwargs or {}
        nested = {key: value for key, value in data.items() if isinstance(value, dict) and key != "options"}
        recipe = recipe_from_dict(nested)
        aliases = {"model": "model.name", "lr": "training.learning_rate"}
        for key, value in data.items():
            if key not in nested:
                recipe.set(aliases.get(key, key), value)
    else:
        raise RecipeError(f"Expected a Recipe, a recipe file path or a dict. Received: {type(recipe_or_kwargs).__name__}")
    for key, value in overrides:
        recipe.set(key, value)
    check_recipe(recipe)
    return recipe


def default_run_dir(recipe: Recipe, runs_dir: str = DEFAULT_RUNS_DIR) -> pathlib.Path:
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe.data.dataset).strip("-")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path(runs_dir) / f"{recipe.model.name.replace(':', '-')}-{dataset}-{stamp}"


def _prepare_run_dir(out: pathlib.Path, *, resume: bool, chief: bool) -> None:
    if resume:
        if not (out / "recipe.toml").is_file():
            raise RunDirectoryError(f"--resume: {out} holds no run to resume (no recipe.toml). Start it without --resume.")
        if (out / "metrics.json").is_file():
            raise RunDirectoryError(f"--resume: the run in {out} already finished (metrics.json exists); nothing to resume.")
        return
    if not chief:
        return  # other workers write to scratch space; the chief checks and creates the directory
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirectoryError(f"Run directory {out} already exists and is not empty; nothing in it was changed. "
                          f"Use --resume to continue that run, or choose another --out.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunDirectoryError(f"Cannot write the run directory {out}: {error.strerror or error}. "
                          f"Choose a writable --out.") from None


def provenance(recipe: Recipe) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from kerasdrop import __version__

    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "seed": recipe.training.seed,
        "kerasdrop": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_recipe(recipe: Recipe, path: pathlib.Path, extra: dict | None = None) -> None:
    import tomli_w

    data = recipe.to_dict()
    if extra:
        data.update(extra)
    path.write_text("# Fully resolved by kerasdrop train: `kerasdrop train recipe.toml` reproduces this run.\n"
                    + tomli_w.dumps(data))


def recipe_datasets(recipe: Recipe):
    """The recipe's train/validation/test pipelines, split exactly as its run was."""
    from kerasdrop.data import load_dataset

    return load_dataset(
        recipe.data.dataset, batch_size=recipe.training.batch_size, seed=recipe.training.seed,
        validation_fraction=recipe.data.validation_fraction, test_fraction=recipe.data.test_fraction,
        data_dir=recipe.data.data_dir, image_size=tuple(recipe.data.image_size) if recipe.data.image_size else None,
        train_size=recipe.data.train_size, split_seed=recipe.data.split_seed,
    )


def _optimizer(name: str, learning_rate: float):
    import keras

    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    if name == "sgd":
        return classes[name](learning_rate=learning_rate, momentum=0.9)
    return classes[name](learning_rate=learning_rate)


def compile_for_training(model, training, *, steps_per_epoch: int) -> None:
    """Compiles with the recipe's optimizer, sparse cross-entropy on the softmax output, and accuracy."""
    model.compile(
        optimizer=_optimizer(training.optimizer, training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # More steps per execution than an epoch has would overshoot Keras' progress bar.
        steps_per_execution=MULTI_WORKER_STEPS_PER_EXECUTION if training.strategy == "multi_worker"
        else min(training.steps_per_execution, max(1, steps_per_epoch)),
        # XLA measured slower than plain graphs for these models on CPU (bench/train_throughput.py),
        # and Keras turns it off anyway under op determinism.
        jit_compile=False,
    )


def train(
    recipe_or_kwargs: Recipe | str | os.PathLike | dict | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overrides: Sequence[tuple[str, Any]] = (),
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
    runs_dir: str = DEFAULT_RUNS_DIR,
    backup: bool = True,
) -> Run:
    """Trains a zoo model from a recipe and writes a run directory.

    Args:
        recipe_or_kwargs: a `Recipe`, a recipe TOML path, or a dict such as
            `{"model": "lenet5", "dataset": "digits", "epochs": 10}` (bare keys or sections).
        out: the run directory (default `runs/<model>-<dataset>-<timestamp>`); must be new or empty
            unless `resume`.
        resume: continue the interrupted run in `out` from its last completed epoch, with the
            recipe saved there.
        overrides: `(key, value)` pairs applied on top of the recipe (`("training.epochs", 5)`).
        verbose: Keras' progress output (`"auto"`, 0, 1, 2).
        callbacks: extra Keras callbacks.
        backup: save a per-epoch backup so an interrupted run can be resumed. Studies of many short
            runs turn it off and retrain an interrupted run instead (bench/study_run.py compares both).

    Returns:
        The finished `Run`: directory, resolved recipe, test metrics and per-epoch history.
    """
    # --- recipe and run directory -------------------------------------------------------------
    if resume:
        if out is None:
            raise RunDirectoryError("--resume needs --out naming the run directory to continue.")
        out = pathlib.Path(out)
        _prepare_run_dir(out, resume=True, chief=True)
        recipe = load_recipe(out / "recipe.toml")
        if recipe_or_kwargs is not None or overrides:
            requested = resolve_recipe(recipe_or_kwargs if recipe_or_kwargs is not None else recipe, overrides)
            if requested.to_dict() != recipe.to_dict():
                raise RecipeError(f"--resume continues the run in {out} with its own recipe.toml; "
                                  "do not pass a different recipe or overrides.")
    else:
        recipe = resolve_recipe(recipe_or_kwargs, overrides)
        out = pathlib.Path(out) if out is not None else default_run_dir(recipe, runs_dir)

    from kerasdrop.training.distribute import is_chief, make_strategy

    chief = is_chief()
    # The strategy must exist before other TensorFlow work (MultiWorkerMirroredStrategy requires it).
    strategy = make_strategy(recipe.training.strategy)
    existed = out.exists()
    _prepare_run_dir(out, resume=resume, chief=chief)
    try:
        return _train_in(recipe, out, strategy, chief=chief, resume=resume, verbose=verbose, callbacks=callbacks,
                         backup=backup)
    except BaseException as error:
        completed = len(artifacts.read_history_csv(out / "history.csv"))
        # A new run that ends before its first epoch holds nothing worth resuming: leave no directory
        # behind that would refuse the same --out next time.
        removed = chief and not resume and completed == 0 and _remove_run_files(out, keep_directory=existed)
        if isinstance(error, KeyboardInterrupt):
            raise TrainingInterrupted(out, completed, recipe.training.epochs, removed=removed) from None
        raise


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: how many epochs were completed, and whether the run directory was kept."""

    def __init__(self, directory: pathlib.Path, completed_epochs: int, epochs: int, *, removed: bool):
        super().__init__(f"training interrupted after {completed_epochs} of {epochs} epochs")
        self.directory = directory
        self.completed_epochs = completed_epochs
        self.epochs = epochs
        self.removed = removed


def _remove_run_files(out: pathlib.Path, *, keep_directory: bool) -> bool:
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


def _train_in(recipe: Recipe, out: pathlib.Path, strategy, *, chief: bool, resume: bool, verbose, callbacks,
              backup: bool = True) -> Run:
    """The run itself, in a prepared run directory `out` (see `train`)."""
    # Non-chief workers still run every callback; they write into a scratch directory.
    write_dir = out if chief else pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-worker-"))

    # --- seeds and determinism ----------------------------------------------------------------
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(recipe.training.seed)
    tf.config.experimental.enable_op_determinism()

    # --- data ---------------------------------------------------------------------------------
    data = recipe_datasets(recipe)
    info = data.info
    if chief and not resume:
        write_recipe(recipe, write_dir / "recipe.toml",
                     {"provenance": {**provenance(recipe), "dataset": {key: value for key, value in info.to_dict().items()
                                                                       if value is not None}}})

    # --- model and callbacks ------------------------------------------------------------------
    model = build_compiled_model(recipe, info, strategy)
    monitor = recipe.training.monitor
    history_csv = write_dir / "history.csv"
    resumed_after = artifacts.record_resume(write_dir, len(artifacts.read_history_csv(history_csv))) if resume else []
    run_callbacks = _run_callbacks(recipe.training, write_dir, resume=resume, backup=backup, extra=callbacks)

    # --- fit ----------------------------------------------------------------------------------
    with _distributed_fit_context(recipe.training.strategy, strategy, model, data.train):
        started = time.perf_counter()
        model.fit(data.train, validation_data=data.validation, epochs=recipe.training.epochs,
                  callbacks=run_callbacks, verbose=verbose, shuffle=False)  # the pipeline shuffles, seeded
        seconds = time.perf_counter() - started

        # --- final model, history, metrics, curves --------------------------------------------
        history = artifacts.read_history_csv(history_csv)
        mixed_precision = recipe.training.precision != "float32"
        if mixed_precision:
            model = _saved_as_float32(model, write_dir, recipe.training)
        metrics = _evaluate(model, data, history, monitor)
    metrics["seconds"] = round(seconds, 2)
    metrics["resumed_after_epochs"] = resumed_after
    if chief:
        if not mixed_precision:  # _saved_as_float32 already wrote model.keras
            model.save(write_dir / "model.keras")
        artifacts.write_json(write_dir / "history.json", history)
        artifacts.write_json(write_dir / "metrics.json", metrics)
        artifacts.plot_curves(history, write_dir / "curves.png",
                              f"{recipe.model.name} on {recipe.data.dataset} (dropout {_describe_dropout(model)})",
                              best_epoch=metrics["best_epoch"], resumed_after=resumed_after)
    else:
        shutil.rmtree(write_dir, ignore_errors=True)
    if metrics["status"] == "nan":
        raise TrainingDivergedError(f"Training stopped: the loss became NaN (history in {out}). "
                                 "Lower training.learning_rate or check the data's pixel range.")
    return Run(out, recipe, metrics, history)


def build_compiled_model(recipe: Recipe, info, strategy):
    """The recipe's zoo model for the data set, compiled for training inside the strategy's scope."""
    import keras

    from kerasdrop.zoo import create_model

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(recipe.training.precision)
    try:
        with strategy.scope():
            model = create_model(
                recipe.model.name, num_classes=info.num_classes, input_shape=info.input_shape,
                input_range=info.pixel_range,
                dense_units=tuple(recipe.model.dense_units) if recipe.model.dense_units is not None else None,
                dropout=recipe.model.dropout, dropout_kind=recipe.model.dropout_kind,
                conv_dropout=recipe.model.conv_dropout, **recipe.model.options,
            )
            examples = info.num_train_full or info.num_train
            compile_for_training(model, recipe.training,
                                 steps_per_epoch=math.ceil(examples / recipe.training.batch_size))
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return model


def _run_callbacks(training, write_dir: pathlib.Path, *, resume: bool, backup: bool, extra) -> list:
    """Backup (resumable), NaN stop, best.keras, history.csv, the caller's callbacks, early stopping."""
    import keras

    monitor = training.monitor
    mode = "min" if "loss" in monitor else "max"
    history_csv = write_dir / "history.csv"
    checkpoint = keras.callbacks.ModelCheckpoint(write_dir / "best.keras", monitor=monitor, mode=mode, save_best_only=True)
    earlier = artifacts.best_epoch(artifacts.read_history_csv(history_csv), monitor) if resume else None
    if earlier is not None:
        checkpoint.best = earlier[monitor]  # so a resumed run does not replace a better best.keras
    run_callbacks = [
        *([keras.callbacks.BackupAndRestore(os.fspath(write_dir / "backup"))] if backup else []),
        keras.callbacks.TerminateOnNaN(),
        checkpoint,
        keras.callbacks.CSVLogger(os.fspath(history_csv), append=resume),
        *extra,
    ]
    if training.early_stopping_patience:
        run_callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                                           patience=training.early_stopping_patience))
    return run_callbacks


def _distributed_fit_context(strategy_name: str, strategy, model, train_pipeline):
    """Where fit and evaluate run: with Keras' workarounds (restored on exit) only under multi-worker."""
    if strategy_name != "multi_worker":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(strategy.scope())  # the pre-build creates variables, so inside the strategy
    stack.enter_context(multi_worker_fit(model, train_pipeline))
    return stack


def _saved_as_float32(model, write_dir: pathlib.Path, training):
    """Converts the final model and best.keras to float32 computation, so exports are float32."""
    import keras

    from kerasdrop.zoo.rewire import as_float32

    best = write_dir / "best.keras"
    if best.is_file():
        as_float32(keras.saving.load_model(best, compile=False)).save(best)
    converted = as_float32(model)
    # Saved before compiling: the optimizer state of a mixed run does not carry over to the copy,
    # and an unbuilt optimizer in the file only makes Keras warn on every load.
    converted.save(write_dir / "model.keras")
    compile_for_training(converted, training, steps_per_epoch=1)
    return converted


def _evaluate(model, data, history: list[dict], monitor: str) -> dict:
    last = history[-1] if history else {}
    status = "nan" if last and math.isnan(last.get("loss", 0.0)) else "complete"
    test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
    # Training accuracy measured in inference mode (dropout off), so the gap compares like with like.
    train_loss, train_accuracy = model.evaluate(data.train, verbose=0)
    validation_loss, validation_accuracy = model.evaluate(data.validation, verbose=0)
    best = artifacts.best_epoch(history, monitor)
    return {
        "status": status,
        "epochs_completed": len(history),
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "validation_accuracy": validation_accuracy,
        "validation_loss": validation_loss,
        "generalization_gap": train_accuracy - validation_accuracy,
        "best_epoch": None if best is None else best["epoch"] + 1,
        f"best_{monitor}": None if best is None else best[monitor],
        "dataset": data.info.to_dict(),
    }


def _describe_dropout(model) -> str:
    from kerasdrop.zoo.rewire import head_dropout_layers

    rates = [getattr(layer, "rate", 0.0) for layer in head_dropout_layers(model)]
    return ", ".join(f"{rate:g}" for rate in rates) or "none"
