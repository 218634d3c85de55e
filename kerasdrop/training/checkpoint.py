"""`best.keras` written once, at the end of a run, from the best epoch's state kept in memory.

Keras' `ModelCheckpoint(save_best_only=True)` writes the file at every improvement (several times
per short run); a study's runs keep the state and write it once. An interrupted run writes nothing,
which suits studies: they train an interrupted run again.
"""

from __future__ import annotations

import math
import os


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
                self.model.save(path)
            finally:
                _assign(self._variables(), final)

        def _variables(self):
            return [*self.model.variables, *self.model.optimizer.variables]

    return BestInMemoryCheckpoint()


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)
