"""Server-side dynamic batching: concurrent requests to one signature are run as one batch.

Off by default, as in TF Serving. A request waits at most `batch_timeout_micros` for others to
join; a batch holds at most `max_batch_size` rows. Only single-input signatures with a leading
batch dimension are batched; the rest run directly.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np


class Batcher:
    def __init__(self, run, *, max_batch_size: int, batch_timeout_micros: int, on_batch=None):
        self._run = run  # run(inputs: dict[str, array]) -> dict[str, array]
        self._max_batch_size = max_batch_size
        self._timeout = batch_timeout_micros / 1e6
        self._on_batch = on_batch
        self._queue: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kerasdrop-batcher", daemon=True)
        self._thread.start()

    def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        future: Future = Future()
        rows = len(next(iter(inputs.values())))
        self._queue.put((inputs, rows, future))
        return future.result()

    def stop(self) -> None:
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        import time

        while not self._stopped.is_set():
            item = self._queue.get()
            if item is None:
                break
            batch, rows = [item], item[1]
            deadline = time.monotonic() + self._timeout
            while rows < self._max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stopped.set()
                    break
                if rows + item[1] > self._max_batch_size:
                    self._execute(batch)
                    batch, rows = [item], item[1]
                    continue
                batch.append(item)
                rows += item[1]
            self._execute(batch)

    def _execute(self, batch) -> None:
        keys = list(batch[0][0])
        try:
            merged = {key: np.concatenate([inputs[key] for inputs, _, _ in batch]) for key in keys}
            outputs = self._run(merged)
            if self._on_batch:
                self._on_batch(sum(rows for _, rows, _ in batch))
            start = 0
            for _, rows, future in batch:
                future.set_result({key: value[start:start + rows] for key, value in outputs.items()})
                start += rows
        except BaseException as error:  # every waiting request gets the error, none hangs
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
