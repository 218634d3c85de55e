"""Admission control: a bound on requests in flight (running or queued) per model, and on what one
request may carry (elements per input, decoded image pixels). Beyond any, the request is refused at once."""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict

from kerasdrop.serving.errors import ServingError, overloaded
from kerasdrop.serving.limits import (
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_INFLIGHT,
)


class Admission:
    """`shared`: a SharedCounters table that every worker process of the server uses, so that the
    limit holds for all of them together (`--workers N` does not multiply it)."""

    def __init__(
        self,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        shared=None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ):
        self.max_inflight = max_inflight
        self.max_elements = max_elements
        self.max_image_pixels = max_image_pixels
        self.shared = shared
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = defaultdict(int)  # the limit's count when not shared
        self._local: dict[str, int] = defaultdict(int)  # this process's requests, shared or not

    def _acquire(self, model: str) -> bool:
        """Takes a slot or raises; True when the slot is in the shared table."""
        if self.shared is not None:
            before = self.shared.add(model, 1, self.max_inflight)
            if before is not None:
                if before >= self.max_inflight:
                    raise overloaded(model, self.max_inflight)
                return True
        with self._lock:  # one process (or a full shared table): this process's own count
            if self._inflight[model] >= self.max_inflight:
                raise overloaded(model, self.max_inflight)
            self._inflight[model] += 1
        return False

    def _release(self, model: str, shared: bool) -> None:
        if shared:
            self.shared.add(model, -1)
        else:
            with self._lock:
                self._inflight[model] -= 1

    @contextlib.contextmanager
    def slot(self, model: str):
        shared = self._acquire(model)
        with self._lock:
            self._local[model] += 1
        try:
            yield
        finally:
            with self._lock:
                self._local[model] -= 1
            self._release(model, shared)

    def inflight(self, model: str) -> int:
        """Requests in flight for `model` in all processes sharing the limit."""
        with self._lock:
            unshared = self._inflight.get(model, 0)
        return unshared + (self.shared.get(model) if self.shared is not None else 0)

    def local_inflight(self, model: str) -> int:
        """Requests in flight for `model` in this process."""
        with self._lock:
            return self._local.get(model, 0)

    def check_elements(self, name: str, count: int) -> None:
        if count > self.max_elements:
            raise too_many_elements(name, count, self.max_elements)


def too_many_elements(name: str, count: int, limit: int) -> ServingError:
    return ServingError(
        "RESOURCE_EXHAUSTED",
        f"Input {name!r} has {count} elements; the limit is {limit} per "
        "request (--max-elements). Send fewer rows per request",
        http_status=413,
    )
