"""`train(recipe) -> Run`: the fit loop with its callbacks, writing a self-contained run directory.

Reads top to bottom: resolve the recipe and run directory, seed everything, load data, build and
compile inside the strategy scope, fit (resumable), then write the final model, history, metrics
and curves. Only the chief process writes the run directory.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from kerasdrop._keras_compat import multi_worker_fit
from kerasdrop.errors import RunDirectoryError, TrainingDivergedError
from kerasdrop.training import artifacts, interrupts
from kerasdrop.training.build import (
    compile_for_training,
    describe_dropout,
    evaluate_trained,
)
from kerasdrop.training.checkpoint import (
    BACKUP_DIR,
    best_checkpoint,
    best_in_memory_checkpoint,
    epoch_record_callbacks,
    read_backup,
    run_backup,
    save_atomically,
)
from kerasdrop.training.identity import check_resumable, run_fingerprint, write_fingerprint
from kerasdrop.training.recipe import Recipe, RecipeError, load_recipe, resolve_recipe
from kerasdrop.training.run import (
    DEFAULT_RUNS_DIR,
    Run,
    default_run_dir,
    prepare_run_dir,
    provenance,
    remove_run_files,
    write_recipe,
)
from kerasdrop.training.session import TrainingSession


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
    session: TrainingSession | None = None,
    overwrite: bool = False,
) -> Run:
    """Trains a zoo model from a recipe and writes a run directory.

    Args:
        recipe_or_kwargs: a `Recipe`, a recipe TOML path, or a dict such as
            `{"model": "lenet5", "dataset": "digits", "epochs": 10}` (bare keys or sections).
        out: the run directory (default `runs/<model>-<dataset>-<timestamp>`); must be new or empty
            unless `resume` or `overwrite`.
        resume: continue the interrupted run in `out` from its last completed epoch, with the
            recipe saved there; refused if recipe.toml (or the data set, or the code) changed since
            the run started (its `fingerprint.json`), so a resumed run never changes its settings or split.
        overrides: `(key, value)` pairs applied on top of the recipe (`("training.epochs", 5)`).
        verbose: Keras' progress output (`"auto"`, 0, 1, 2).
        callbacks: extra Keras callbacks.
        backup: save a per-epoch backup so an interrupted run can be resumed. Studies of many short
            runs turn it off and retrain an interrupted run instead (bench/study_backup.py compares both).
        session: a `TrainingSession` shared by the runs of a study: they reuse its loaded data and
            compiled models (None: a session of this run only). The numbers are the same either way.
        overwrite: replace the run that `out` holds (a directory holding anything else is still refused).

    SIGINT and SIGTERM both end training as Ctrl-C does (`TrainingInterrupted`, which names the signal):
    the epoch in flight is discarded, every completed epoch is kept whole, and `resume` continues.

    Returns:
        The finished `Run`: directory, resolved recipe, test metrics and per-epoch history.
    """
    # --- recipe and run directory -------------------------------------------------------------
    if resume:
        if out is None:
            raise RunDirectoryError("--resume needs --out naming the run directory to continue.")
        out = pathlib.Path(out)
        if overwrite:
            raise RunDirectoryError(
                "--resume continues the run in --out and --overwrite replaces it; pass one."
            )
        recipe = _resumed_recipe(out, recipe_or_kwargs, overrides)
    else:
        recipe = resolve_recipe(recipe_or_kwargs, overrides)
        out = pathlib.Path(out) if out is not None else default_run_dir(recipe, runs_dir)

    from kerasdrop.training.cpu import apply_cpu_threads
    from kerasdrop.training.distribute import is_chief, make_strategy

    apply_cpu_threads(recipe.training.cpu_threads)  # before TensorFlow's first op fixes its thread pools
    chief = is_chief()
    # The strategy must exist before other TensorFlow work (MultiWorkerMirroredStrategy requires it).
    strategy = make_strategy(recipe.training.strategy)
    existed = out.exists()
    prepare_run_dir(out, resume=resume, chief=chief, overwrite=overwrite)
    with interrupts.interrupts_raised():
        try:
            return _train_in(
                recipe,
                out,
                strategy,
                chief=chief,
                resume=resume,
                verbose=verbose,
                callbacks=callbacks,
                backup=backup,
                session=session if session is not None else TrainingSession(reuse=False),
            )
        except BaseException as error:
            completed = completed_epochs(out)
            # A new run that ends before its first epoch holds nothing worth resuming: leave no directory
            # behind that would refuse the same --out next time.
            removed = (
                chief and not resume and completed == 0 and remove_run_files(out, keep_directory=existed)
            )
            if isinstance(error, KeyboardInterrupt):
                number = getattr(error, "signal_number", signal.SIGINT)
                raise TrainingInterrupted(
                    out, completed, recipe.training.epochs, removed=removed, signal_number=number
                ) from None
            raise


def _resumed_recipe(out: pathlib.Path, recipe_or_kwargs, overrides) -> Recipe:
    """The recipe of the interrupted run in `out`, if what was asked for and what it started with agree."""
    prepare_run_dir(out, resume=True, chief=True)
    recipe = load_recipe(out / "recipe.toml")
    if recipe_or_kwargs is not None or overrides:
        requested = resolve_recipe(recipe_or_kwargs if recipe_or_kwargs is not None else recipe, overrides)
        if requested.to_dict() != recipe.to_dict():
            raise RecipeError(
                f"--resume continues the run in {out} with its own recipe.toml; "
                "do not pass a different recipe or overrides."
            )
    check_resumable(out, recipe)
    return recipe


def completed_epochs(out: pathlib.Path) -> int:
    """Epochs a run directory holds whole: its backup's count (what --resume continues from), else its
    history rows."""
    state = read_backup(out / BACKUP_DIR)
    return state["epoch"] if state is not None else len(artifacts.read_history_csv(out / "history.csv"))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during `train`: epochs completed, whether the run directory was kept, and which
    signal."""

    def __init__(
        self,
        directory: pathlib.Path,
        completed_epochs: int,
        epochs: int,
        *,
        removed: bool,
        signal_number: int = signal.SIGINT,
    ):
        super().__init__(f"training interrupted after {completed_epochs} of {epochs} epochs")
        self.directory = directory
        self.completed_epochs = completed_epochs
        self.epochs = epochs
        self.removed = removed
        self.signal_number = signal_number


def _train_in(
    recipe: Recipe,
    out: pathlib.Path,
    strategy,
    *,
    chief: bool,
    resume: bool,
    verbose,
    callbacks,
    backup: bool,
    session: TrainingSession,
) -> Run:
    """The run itself, in a prepared run directory `out` (see `train`)."""
    # Non-chief workers still run every callback; they write into a scratch directory.
    write_dir = out if chief else pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-worker-"))

    # --- seeds and determinism ----------------------------------------------------------------
    import keras
    import tensorflow as tf

    from kerasdrop.training.cpu import warn_if_bfloat16_is_emulated

    keras.utils.set_random_seed(recipe.training.seed)
    tf.config.experimental.enable_op_determinism()
    warn_if_bfloat16_is_emulated(recipe.training.precision)

    # --- data ---------------------------------------------------------------------------------
    data = session.datasets(recipe)
    info = data.info
    if chief and not resume:
        write_fingerprint(write_dir, run_fingerprint(recipe))
        write_recipe(
            recipe,
            write_dir / "recipe.toml",
            {
                "provenance": {
                    **provenance(recipe),
                    "dataset": {key: value for key, value in info.to_dict().items() if value is not None},
                }
            },
        )

    # --- model and callbacks ------------------------------------------------------------------
    model = session.compiled_model(recipe, info, strategy)
    monitor = recipe.training.monitor
    history_csv = write_dir / "history.csv"
    resumed_after = []
    if resume:
        # The backup is the record of completed epochs: history.csv is rewritten from it, dropping a row
        # of an epoch whose backup was never committed and restoring one a kill kept from the file.
        state = read_backup(write_dir / BACKUP_DIR)
        artifacts.write_history_csv(history_csv, state["history"] if state is not None else [])
        resumed_after = artifacts.record_resume(write_dir, state["epoch"] if state is not None else 0)
    # A study's run (no backup: retrained if interrupted) keeps its best epoch in memory until the end.
    run_callbacks = _run_callbacks(
        recipe.training,
        write_dir,
        resume=resume,
        backup=backup,
        extra=callbacks,
        best_in_memory=session.reuse and not backup and not resume,
    )

    # --- fit ----------------------------------------------------------------------------------
    with _distributed_fit_context(recipe.training.strategy, strategy, model, data.train):
        started = time.perf_counter()
        with interrupts.deferred():  # a signal is raised at a callback hook, not inside TensorFlow
            model.fit(
                data.train,
                validation_data=data.validation,
                epochs=recipe.training.epochs,
                callbacks=run_callbacks,
                verbose=verbose,
                shuffle=False,
            )  # the pipeline shuffles, seeded
        seconds = time.perf_counter() - started

        # --- final model, history, metrics, curves --------------------------------------------
        history = artifacts.read_history_csv(history_csv)
        mixed_precision = recipe.training.precision != "float32"
        if mixed_precision:
            model = _saved_as_float32(model, write_dir, recipe.training)
        metrics = evaluate_trained(model, data, history, monitor)
    metrics["seconds"] = round(seconds, 2)
    metrics["resumed_after_epochs"] = resumed_after
    if chief:
        if not mixed_precision:  # _saved_as_float32 already wrote model.keras
            save_atomically(model.save, write_dir / "model.keras")
        artifacts.write_json(write_dir / "history.json", history)
        artifacts.plot_curves(
            history,
            write_dir / "curves.png",
            f"{recipe.model.name} on {recipe.data.dataset} (dropout {describe_dropout(model)})",
            best_epoch=metrics["best_epoch"],
            resumed_after=resumed_after,
        )
        artifacts.write_json(write_dir / "metrics.json", metrics)  # last: a run with metrics.json is finished
        # Kept until now, so a kill after the last epoch resumes into writing these files.
        shutil.rmtree(write_dir / BACKUP_DIR, ignore_errors=True)
    else:
        shutil.rmtree(write_dir, ignore_errors=True)
    if metrics["status"] == "nan":
        raise TrainingDivergedError(
            f"Training stopped: the loss became NaN (history in {out}). "
            "Lower training.learning_rate or check the data's pixel range."
        )
    return Run(out, recipe, metrics, history)


def _run_callbacks(
    training, write_dir: pathlib.Path, *, resume: bool, backup: bool, extra, best_in_memory: bool = False
) -> list:
    """NaN stop, best.keras, backup (resumable), history.csv, the caller's callbacks, early stopping.

    All inside one epoch record (`epoch_record_callbacks`): a signal waits until the epoch's files are
    written.
    """
    import keras

    monitor = training.monitor
    mode = "min" if "loss" in monitor else "max"
    history_csv = write_dir / "history.csv"
    if best_in_memory:
        checkpoint = best_in_memory_checkpoint(write_dir / "best.keras", monitor=monitor, mode=mode)
    else:
        checkpoint = best_checkpoint(write_dir / "best.keras", monitor=monitor, mode=mode)
    earlier = artifacts.best_epoch(artifacts.read_history_csv(history_csv), monitor) if resume else None
    if earlier is not None:
        checkpoint.best = earlier[monitor]  # so a resumed run does not replace a better best.keras
    open_record, close_record = epoch_record_callbacks()
    run_callbacks = [
        open_record,
        keras.callbacks.TerminateOnNaN(),
        # best.keras before the backup that commits the epoch, history.csv after it (a kill between
        # the two is repaired on resume from the backup's own copy of the history).
        checkpoint,
        *([run_backup(write_dir / BACKUP_DIR)] if backup else []),
        keras.callbacks.CSVLogger(os.fspath(history_csv), append=resume),
        *extra,
    ]
    if training.early_stopping_patience:
        run_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=training.early_stopping_patience
            )
        )
    run_callbacks.append(close_record)
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
        save_atomically(as_float32(keras.saving.load_model(best, compile=False)).save, best)
    converted = as_float32(model)
    # Saved before compiling: the optimizer state of a mixed run does not carry over to the copy,
    # and an unbuilt optimizer in the file only makes Keras warn on every load.
    save_atomically(converted.save, write_dir / "model.keras")
    compile_for_training(converted, training, steps_per_epoch=1)
    return converted
