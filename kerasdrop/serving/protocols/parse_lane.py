"""A separate lane for large JSON bodies: a helper process parses them, so that the server's own
process (its event loop and the other requests' threads) keeps the GIL while it does.

orjson holds the GIL for the whole parse (about a second for 60 MB), and every other client of the
worker waited that long. The helper (this module run as `python -m`, no TensorFlow) reads a body,
parses it with orjson and turns the numeric `instances` / `inputs` into float64 or int64 numpy
arrays; the server reads the arrays back while its thread waits on the pipe without the GIL.
Anything else (invalid JSON, strings, ragged lists, other keys' values) comes back as None, and the
caller parses the body itself: errors stay exactly the in-process path's.

    python -m kerasdrop.serving.protocols.parse_lane      # frames on stdin/stdout: 8-byte length + payload
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading

import numpy as np
import orjson

log = logging.getLogger("kerasdrop.serve")
LANE_MIN_BYTES = 4 * 1024 * 1024  # below it, parsing in place is faster than the round trip


def _numeric(value):
    """`value` as a numpy array if it is a rectangular list of JSON numbers, else None."""
    if not isinstance(value, list) or not value:
        return None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return array if array.dtype.kind in "fi" else None


def parse_numeric_request(body: bytes) -> dict | None:
    """The request with its `instances` / `inputs` (or each of its named `inputs`) as arrays, or
    None when the body is anything but that (the caller then parses it itself)."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        return None
    key = "instances" if "instances" in request else "inputs"
    value = request[key]
    if isinstance(value, dict) and key == "inputs":
        arrays = {name: _numeric(item) for name, item in value.items()}
        if not arrays or any(array is None for array in arrays.values()):
            return None
        return request | {key: arrays}
    array = _numeric(value)
    return None if array is None else request | {key: array}


def _read_frame(stream) -> bytes | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def _write_frame(stream, data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "little"))
    stream.write(data)
    stream.flush()


class ParseLane:
    """The helper process of one server process, started on first use, one body at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process = None

    def parse(self, body) -> dict | None:
        """Like `parse_numeric_request(body)`, in the helper; None also when the helper failed."""
        with self._lock:
            try:
                if self._process is None or self._process.poll() is not None:
                    self._process = subprocess.Popen(
                        [sys.executable, "-m", "kerasdrop.serving.protocols.parse_lane"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                _write_frame(self._process.stdin, body)
                answer = _read_frame(self._process.stdout)
            except (OSError, ValueError) as error:  # a broken pipe, a closed stream
                answer = None
                log.warning("the JSON parse lane failed (%s); parsing in place", error)
            if answer is None:
                self.stop()
                return None
            return pickle.loads(answer)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (body := _read_frame(stdin)) is not None:
        _write_frame(stdout, pickle.dumps(parse_numeric_request(body), protocol=5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
