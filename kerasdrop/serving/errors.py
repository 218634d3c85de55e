"""Errors a request can cause, with the status TF Serving gives them (REST and gRPC)."""

from __future__ import annotations

from kerasdrop.errors import KerasdropError


class ServingError(KerasdropError):
    """A request that cannot be served. `code` is the TF Serving / gRPC status name."""

    http_status = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 400,
                   "RESOURCE_EXHAUSTED": 413, "UNAVAILABLE": 503, "INTERNAL": 500, "UNIMPLEMENTED": 501}

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.http_status.get(self.code, 500)


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)
