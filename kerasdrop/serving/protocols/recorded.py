"""The one wrapper every protocol adapter answers a request in (TF Serving's and the Open Inference
Protocol's, REST and gRPC): it times the request, turns any error into a ServingError and records the
request's metric, so that the same failure is the same status and the same metric on every transport.

An adapter makes a `Call` (the manager, the model the request names, its API label), runs its
handler through `rest_answer` or `grpc_answer` (both over `run_recorded`), which turn the handler's
result or error into the transport's answer. Also shared by the adapters: `parse_version` and `grpc_timeout`.
"""

from __future__ import annotations

import time

import orjson

from kerasdrop.serving.errors import ServingError, grpc_status_code, invalid

JSON = "application/json"
NO_HEADERS = ()  # a REST answer's extra headers when it has none (one shared empty tuple: no allocation)


class Call:
    """One request being answered: what its metric records.

    `model` is the model the request names (None: a request that names none, such as a health
    check, records no metric); `api` the metric's API label (`rest:predict`, `grpc:v2_infer`...);
    `version` the version that answered, set by `resolve` (empty for a request that failed before).
    """

    __slots__ = ("manager", "model", "api", "version", "started")

    def __init__(self, manager, model: str | None, api: str):
        self.started = time.perf_counter()
        self.manager, self.model, self.api, self.version = manager, model, api, ""

    def resolve(self, name: str, version: int | None = None, label: str | None = None):
        """`manager.resolve`, remembering the version that answered for the metric."""
        loaded = self.manager.resolve(name, version, label)
        self.version = loaded.version
        return loaded


def internal_error(error: Exception) -> ServingError:
    """A server bug as a request's error: INTERNAL (500), its message naming the exception."""
    return ServingError("INTERNAL", f"Internal error: {type(error).__name__}: {error}")


def run_recorded(call: Call, handler, *args):
    """`(handler(call, *args), None)`, or `(None, error)` when it raised: a ServingError as it is,
    anything else (a server bug) as INTERNAL. Records the request's metric either way."""
    try:
        result, error, code = handler(call, *args), None, "OK"
    except ServingError as raised:
        result, error, code = None, raised, raised.code
    except Exception as raised:  # a server bug: still an answer, still serving
        result, error, code = None, internal_error(raised), "INTERNAL"
    if call.model is not None:
        seconds = time.perf_counter() - call.started
        call.manager.record_request(call.model, call.version, call.api, code, seconds)
    return result, error


def rest_error(error: ServingError) -> tuple[int, bytes, str, tuple]:
    """A REST router's answer to `error`: its status with `{"error": message}`."""
    return error.status, orjson.dumps({"error": error.message}), JSON, NO_HEADERS


def rest_answer(call: Call, handler, *args) -> tuple[int, bytes, str, tuple]:
    """A REST router's answer: `handler(call, *args)`'s `(status, body, content type, extra headers)`,
    or `rest_error` of what it raised."""
    answer, error = run_recorded(call, handler, *args)
    return answer if error is None else rest_error(error)


def grpc_answer(call: Call, handler, request, context):
    """A gRPC servicer method's response: `handler(call, request, context)`'s, or the call aborted
    with the status of what it raised (`context.abort` raises)."""
    response, error = run_recorded(call, handler, request, context)
    if error is not None:
        context.abort(grpc_status_code(error.code), error.message)
    return response


def grpc_timeout(context) -> float | None:
    """The seconds left before the call's deadline, or None when it has none."""
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e6 else None


def parse_version(text: str | None) -> int | None:
    """A model version from a URL or a message: empty means the server's choice (the latest serving)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**63:  # not '²', which int() refuses
        raise invalid(f"Model version must be a positive 64-bit integer; received {text!r}")
    return int(text)
