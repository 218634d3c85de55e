"""Request bodies as JSON, for every protocol's REST router: strict parsing with errors a client can
act on, large numeric bodies parsed in the parse lane's process, and a lock that turns mid-sized
bodies into arrays one at a time per process.
"""

from __future__ import annotations

import contextlib
import re
import threading

import orjson

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.limits import INLINE_MAX_BODY_BYTES
from kerasdrop.serving.protocols.parse_lane import LANE_MIN_BYTES

_NON_FINITE = re.compile(rb"(?<![\w.])(-?Infinity|NaN)(?![\w.])")


def parse_json(body: bytes):
    """orjson: strict JSON, nesting bounded (1024 levels) and integers within 64 bits, all 400s."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        token = _NON_FINITE.search(body)
        if token:
            raise invalid(
                f"JSON value {token.group(1).decode()} is not allowed: inputs must be finite numbers"
            ) from None
        raise invalid(f"JSON Parse error: {error}") from None


def parse_body(body: bytes, lane=None):
    """The request body as JSON; a large one in the parse lane's process when it is plain numbers."""
    request = lane.parse(body) if lane is not None and len(body) >= LANE_MIN_BYTES else None
    return parse_json(body) if request is None else request


# A JSON body holds the GIL while it becomes arrays (orjson, then numpy), and until then it is
# thousands of Python lists. Bodies between SERIAL_MIN_BYTES and the parse lane's size do that one
# at a time per process: each finishes sooner, the others wait their turn without taking the GIL
# from it, and only one request's lists are alive at once. resnet18 (3 MB bodies) over 2 workers,
# 64 connections: 29 -> 31 req/s unbatched, 19 -> 26 batched (72 threads each parsing at once before).
# Smaller bodies never wait for it, so neither does an event loop (it answers only those).
SERIAL_MIN_BYTES = INLINE_MAX_BODY_BYTES
_CONVERTING = threading.Lock()


def converting(body):
    """The lock a body of this size takes while it turns into arrays (a no-op for small ones and
    for those the parse lane parses)."""
    return _CONVERTING if SERIAL_MIN_BYTES < len(body) < LANE_MIN_BYTES else contextlib.nullcontext()
