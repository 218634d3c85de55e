"""kerasdrop's own error types: bad input or a refused operation, each reported by the CLI in one line.

Every error the library raises on purpose derives from `KerasdropError`, so `kerasdrop` (the CLI)
maps exactly these to exit status 2, and anything else, such as a TypeError from a bug, keeps its
traceback. Each also derives from the built-in type callers would catch without knowing kerasdrop
(`ValueError` for bad values, as Keras raises).
"""

from __future__ import annotations


class KerasdropError(Exception):
    """Base of every error kerasdrop raises on purpose."""


class InvalidArgumentError(KerasdropError, ValueError):
    """An argument outside what the function accepts, in Keras' one template (`_validation.py`)."""


class RunDirectoryError(KerasdropError, ValueError):
    """A run directory that cannot be used as asked: missing, finished, not empty, not writable."""


class DistributionConfigError(KerasdropError, ValueError):
    """TF_CONFIG or `training.strategy` that cannot describe a cluster."""


class TrainingDivergedError(KerasdropError, FloatingPointError):
    """The loss became NaN or infinite; the run directory keeps the history up to that point."""


class PretrainedWeightsUnavailableError(KerasdropError, OSError):
    """Pretrained weights (`weights="imagenet"`) that Keras could not download; the message names the file and
    where to put it."""
