"""Errors a request can cause, with the status TF Serving gives them (REST and gRPC)."""

from __future__ import annotations

from kerasdrop.errors import KerasdropError


class ServingError(KerasdropError):
    """A request that cannot be served. `code` is the TF Serving / gRPC status name.

    `http_status` overrides the REST status where HTTP has a more precise one than the code's
    (413 for a body over the limit, which gRPC reports as RESOURCE_EXHAUSTED like an overload).
    """

    # TF Serving's mapping (model_servers/http_rest_api_handler: ToHTTPStatusCode).
    http_statuses = {
        "INVALID_ARGUMENT": 400,
        "FAILED_PRECONDITION": 400,
        "OUT_OF_RANGE": 400,
        "NOT_FOUND": 404,
        "RESOURCE_EXHAUSTED": 429,
        "DEADLINE_EXCEEDED": 504,
        "UNAVAILABLE": 503,
        "UNIMPLEMENTED": 501,
        "INTERNAL": 500,
    }

    def __init__(self, code: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def status(self) -> int:
        return self._http_status or self.http_statuses.get(self.code, 500)


def grpc_status_code(code: str):
    """The grpc.StatusCode named by a ServingError's code (INTERNAL for a name gRPC does not have)."""
    import grpc

    return getattr(grpc.StatusCode, code, grpc.StatusCode.INTERNAL)


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def signature_not_found(signature: str, protocol: str) -> ServingError:
    """TF Serving's two answers: REST looks the signature up to read the JSON
    (http_rest_api_handler GetInfoMap: INVALID_ARGUMENT), gRPC in predict_util (FAILED_PRECONDITION)."""
    if protocol == "rest":
        return invalid(f'Serving signature name: "{signature}" not found in signature def')
    return ServingError("FAILED_PRECONDITION", f'Serving signature key "{signature}" not found.')


def overloaded(model: str, limit: int) -> ServingError:
    return ServingError(
        "RESOURCE_EXHAUSTED",
        f"Model {model} already has {limit} requests in flight or queued "
        f"(--max-inflight {limit}); retry later",
    )
