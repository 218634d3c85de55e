"""Server-side dynamic batching: concurrent requests to one signature are run as one batch.

Off by default, as in TF Serving. A request waits at most `batch_timeout_micros` for others to
join, and not at all when no other request for the model is in flight in this process (unlike TF
Serving, which always waits: at one connection that wait was the whole of batching's cost): such a
lone request runs at once in its own thread, without the hop to the batcher's; a batch holds at
most `max_batch_size` rows. Only single-input signatures with a leading
batch dimension are batched; the rest run directly.

No request is lost or left waiting: each has a deadline (DEADLINE_EXCEEDED when it passes), a
stopped batcher first runs what is queued, and a request that arrives after the stop (it resolved
the version just before a hot swap retired it) runs directly on the backend, which is still alive.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from kerasdrop.serving.errors import ServingError


def deadline_exceeded(seconds: float) -> ServingError:
    return ServingError("DEADLINE_EXCEEDED", f"Request not answered within its deadline of {seconds:g} s")


class Batcher:
    def __init__(self, run, *, max_batch_size: int, batch_timeout_micros: int, on_batch=None, in_flight=None):
        """`in_flight()`: how many requests for the model this process is handling now (admitted,
        not answered); when all of them are in the batch, it runs without waiting for company."""
        self._run = run  # run(inputs: dict[str, array]) -> dict[str, array]
        self._in_flight = in_flight
        self._max_batch_size = max_batch_size
        self._timeout = batch_timeout_micros / 1e6
        self._on_batch = on_batch
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # orders submit() against stop(): nothing is queued after the stop
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="kerasdrop-batcher", daemon=True)
        self._thread.start()

    def submit(self, inputs: dict[str, np.ndarray], timeout: float = 30.0) -> dict[str, np.ndarray]:
        future: Future = Future()
        rows = len(next(iter(inputs.values())))
        if self._queue.empty() and self._nobody_else(1):  # alone: a batch of one, run here
            outputs = self._run(inputs)
            if self._on_batch:
                self._on_batch(rows)
            return outputs
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._queue.put((inputs, rows, future, time.monotonic() + timeout))
        if stopped:
            return self._run(inputs)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            raise deadline_exceeded(timeout) from None

    def stop(self) -> None:
        """Stops taking requests; what is queued is still run. Returns when the queue is empty."""
        with self._lock:
            self._stopped = True
            self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, rows = [item], item[1]
            deadline = time.monotonic() + self._timeout
            while rows < self._max_batch_size:
                if self._queue.empty() and self._nobody_else(len(batch)):
                    break  # waiting could only add latency: no other request is on its way
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # stop: run this batch, then end (nothing is queued after the None)
                    self._execute(batch)
                    return
                if rows + item[1] > self._max_batch_size:
                    self._execute(batch)
                    batch, rows = [item], item[1]
                    continue
                batch.append(item)
                rows += item[1]
            self._execute(batch)

    def _nobody_else(self, batched: int) -> bool:
        return self._in_flight is not None and self._in_flight() <= batched

    def _execute(self, batch) -> None:
        now = time.monotonic()
        # A request whose client gave up (deadline passed, future cancelled) is not run.
        batch = [item for item in batch if item[3] > now and item[2].set_running_or_notify_cancel()]
        if not batch:
            return
        keys = list(batch[0][0])
        try:
            merged = {key: np.concatenate([item[0][key] for item in batch]) for key in keys}
            outputs = self._run(merged)
            if self._on_batch:
                self._on_batch(sum(item[1] for item in batch))
            start = 0
            for _, rows, future, _ in batch:
                future.set_result({key: value[start : start + rows] for key, value in outputs.items()})
                start += rows
        except BaseException as error:  # every waiting request gets the error, none hangs
            for _, _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
