"""Progress lines for long multi-run jobs (`kerasdrop sweep`): which run, which epoch, how long is left."""

from __future__ import annotations

import time
from collections.abc import Callable


class SweepProgress:
    """Reports each run of a sweep and each of its epochs through `emit` (e.g. `print`); silent if None."""

    def __init__(self, emit: Callable[[str], None] | None, total_runs: int):
        self.emit = emit
        self.total_runs = total_runs
        self.done = 0
        self.trained_seconds: list[float] = []
        self._started = None

    def reused(self, label: str) -> None:
        self.done += 1
        self._say(f"run {self.done}/{self.total_runs}: {label}: finished earlier, reused")

    def start(self, label: str, epochs: int) -> list:
        """Announces the next run; returns the Keras callbacks that report its epochs."""
        self.done += 1
        left = self.total_runs - self.done + 1
        if self.trained_seconds:
            eta = f"ETA {_duration(left * sum(self.trained_seconds) / len(self.trained_seconds))} for {left} run(s)"
        else:
            eta = "ETA after this run"
        self._say(f"run {self.done}/{self.total_runs}: {label}: training {epochs} epochs ({eta})")
        self._started = time.perf_counter()
        return [self._epoch_callback(label, epochs)] if self.emit else []

    def finished_elsewhere(self, label: str) -> None:
        """A run trained in a worker process (`training/workers.py`) has finished."""
        self.done += 1
        self._say(f"run {self.done}/{self.total_runs}: {label}: trained")

    def finish(self) -> None:
        self.trained_seconds.append(time.perf_counter() - self._started)

    def _say(self, line: str) -> None:
        if self.emit:
            self.emit(line)

    def _epoch_callback(self, label: str, epochs: int):
        import keras

        say = self._say

        class EpochProgress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                shown = "  ".join(
                    f"{key} {value:.4f}"
                    for key, value in (logs or {}).items()
                    if key in ("accuracy", "loss", "val_accuracy", "val_loss")
                )
                say(f"  {label}: epoch {epoch + 1}/{epochs}  {shown}")

        return EpochProgress()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"
