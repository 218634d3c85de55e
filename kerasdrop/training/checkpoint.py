"""A run's checkpoint files, each written whole (temp file + rename) so no signal leaves half of one.

`best.keras` at every improvement (`best_checkpoint`) or once, at the end of a study's run, from the
best epoch's state kept in memory (`best_in_memory_checkpoint`: an interrupted study run writes
nothing and is trained again); and the per-epoch backup that `--resume` continues from (`RunBackup`).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import threading

from kerasdrop._files import atomic_write_text
from kerasdrop.training import interrupts

BACKUP_DIR = "backup"
BACKUP_STATE_FILE = "state.json"  # the commit point: completed epochs, their history rows, the weights file
# What Keras' BackupAndRestore left in runs from before RunBackup; still resumed from.
KERAS_BACKUP_WEIGHTS, KERAS_BACKUP_METADATA = "latest.weights.h5", "training_metadata.json"


def _partial_path(path: pathlib.Path) -> pathlib.Path:
    """A hidden sibling of `path` with the suffix Keras requires (`.keras`, `.weights.h5`)."""
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    stem = path.name[: len(path.name) - len(suffix)]
    return path.with_name(f".{stem}.{os.getpid()}.{threading.get_ident()}.partial{suffix}")


def save_atomically(save, path: str | os.PathLike) -> None:
    """Calls `save(temporary_path)` (e.g. `model.save`), then renames the finished file over `path`."""
    path = pathlib.Path(path)
    temporary = _partial_path(path)
    try:
        save(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def best_checkpoint(path: str | os.PathLike, *, monitor: str, mode: str):
    """Saves the model to `path` at each epoch that improves `monitor` (as Keras' ModelCheckpoint with
    `save_best_only=True`), replacing the file whole."""
    import keras

    class BestCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = math.inf if mode == "min" else -math.inf

        def on_epoch_end(self, epoch, logs=None):
            current = (logs or {}).get(monitor)
            if current is None or not (current < self.best if mode == "min" else current > self.best):
                return
            self.best = current
            save_atomically(self.model.save, path)

    return BestCheckpoint()


def best_in_memory_checkpoint(path: str | os.PathLike, *, monitor: str, mode: str):
    """A Keras callback that saves the model as of its best `monitor` epoch to `path` when training ends.

    The saved file is what `ModelCheckpoint(path, monitor=monitor, mode=mode, save_best_only=True)`
    leaves: the weights and the optimizer state after the first epoch with the best value.
    """
    import keras

    class BestInMemoryCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = math.inf if mode == "min" else -math.inf
            self._state = None

        def on_epoch_end(self, epoch, logs=None):
            current = (logs or {}).get(monitor)
            if current is None or not (current < self.best if mode == "min" else current > self.best):
                return
            self.best = current
            self._state = [variable.numpy() for variable in self._variables()]

        def on_train_end(self, logs=None):
            if self._state is None:
                return
            final = [variable.numpy() for variable in self._variables()]
            _assign(self._variables(), self._state)
            try:
                save_atomically(self.model.save, path)
            finally:
                _assign(self._variables(), final)

        def _variables(self):
            return [*self.model.variables, *self.model.optimizer.variables]

    return BestInMemoryCheckpoint()


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


def read_backup(directory: pathlib.Path) -> dict | None:
    """`{"epoch": completed epochs, "weights": file name, "history": [rows]}` of a run's backup, or None."""
    state_path = directory / BACKUP_STATE_FILE
    if state_path.is_file():
        return json.loads(state_path.read_text())
    if (directory / KERAS_BACKUP_METADATA).is_file() and (directory / KERAS_BACKUP_WEIGHTS).is_file():
        from kerasdrop.training.artifacts import read_history_csv

        epoch = json.loads((directory / KERAS_BACKUP_METADATA).read_text())["epoch"]
        history = [row for row in read_history_csv(directory.parent / "history.csv") if row["epoch"] < epoch]
        return {"epoch": epoch, "weights": KERAS_BACKUP_WEIGHTS, "history": history}
    return None


def epoch_record_callbacks() -> tuple:
    """Callbacks to put first and last: a signal between them (an epoch's record) waits for all of it,
    and a signal that waited through fit (interrupts.deferred) is raised at the first one's hooks."""
    import keras

    class OpenRecord(keras.callbacks.Callback):
        # Keras' hooks are where a signal that waited through fit is raised (interrupts.deferred).
        def on_epoch_begin(self, epoch, logs=None):
            interrupts.raise_pending()

        def on_train_batch_end(self, batch, logs=None):
            interrupts.raise_pending()

        def on_test_batch_end(self, batch, logs=None):
            interrupts.raise_pending()

        def on_epoch_end(self, epoch, logs=None):
            interrupts.hold()

    class CloseRecord(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            interrupts.release()

    return OpenRecord(), CloseRecord()


def run_backup(directory: str | os.PathLike):
    """The per-epoch backup that `train --resume` continues from: weights (with the optimizer's state)
    and every completed epoch's history row, committed together by renaming `state.json`.

    Unlike Keras' BackupAndRestore, whose weights and epoch counter are two files written in turn
    (a kill between them resumes the wrong weights), a half-written backup is never read, and the
    history rows travel with it: a resumed run's history has every epoch exactly once.
    """
    import keras

    directory = pathlib.Path(directory)

    class RunBackup(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history: list[dict] = []

        def on_train_begin(self, logs=None):
            state = read_backup(directory)
            self.model._initial_epoch = None  # Keras' resume hook; a reused model may hold an earlier run's
            if state is None:
                return
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(directory / state["weights"])
            self.model._initial_epoch = state["epoch"]
            self.history = list(state["history"])

        def on_epoch_end(self, epoch, logs=None):
            directory.mkdir(parents=True, exist_ok=True)
            weights = f"epoch-{epoch + 1}.weights.h5"
            save_atomically(lambda path: self.model.save_weights(path, overwrite=True), directory / weights)
            row = {key: float(value) for key, value in (logs or {}).items()}
            self.history.append({"epoch": epoch, **row})
            atomic_write_text(
                directory / BACKUP_STATE_FILE,
                json.dumps({"epoch": epoch + 1, "weights": weights, "history": self.history}),
            )
            for old in directory.glob("*.weights.h5"):
                if old.name != weights:
                    old.unlink(missing_ok=True)

        def on_train_end(self, logs=None):
            self.model._initial_epoch = None

    return RunBackup()
