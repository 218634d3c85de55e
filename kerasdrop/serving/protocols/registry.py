"""The protocols `kerasdrop serve` speaks, registered in this one place: each gives the routers the
HTTP app dispatches to and the services the gRPC server registers, all over the one model manager.

A protocol is one `Protocol` entry in `PROTOCOLS`:
- `rest_routers(manager)` -> `RestRouter`s; the first router that claims a path answers it, on the
  HTTP app's thread pool, or on its event loop when the router says the request goes to a cheap
  model (`manager.cheap`; process/http_app.py).
- `grpc_services(manager)` -> `(add_XServicer_to_server, servicer)` pairs: synchronous servicers,
  one method per RPC, that the one gRPC server of each worker process registers (grpc.aio, which
  runs them on a thread pool, or on its event loop for a cheap model: process/grpc_server.py).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable


class RestRouter(typing.Protocol):
    """What the HTTP app asks of a protocol's REST router."""

    def claims(self, path: str) -> bool:
        """Whether this router answers `path` (the app asks each router in registration order)."""

    def cheap(self, method: str, path: str) -> bool:
        """Whether the request goes to a model cheap enough to answer on the app's event loop."""

    def answer(self, method: str, path: str, body: bytearray, headers) -> tuple[int, bytes, str, tuple]:
        """`(status, body bytes, content type, extra headers)` of one request (synchronous; never
        raises for a bad request). `headers`: the request's, as ASGI gives them ((name, value) bytes)."""

    def close(self) -> None:
        """Ends what the router started, when the server stops."""


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    rest_routers: Callable  # manager -> list of routers
    grpc_services: Callable  # manager -> list of (add_to_server function, servicer)


def _tf_serving_rest(manager) -> list:
    from kerasdrop.serving.protocols.tfserving.rest import TfServingRest

    return [TfServingRest(manager)]


def _tf_serving_grpc(manager) -> list:
    from kerasdrop.serving.protocols.tfserving.grpc_service import tf_serving_services

    return tf_serving_services(manager)


def _open_inference_rest(manager) -> list:
    from kerasdrop.serving.protocols.oip.rest import OipRest

    return [OipRest(manager)]


def _open_inference_grpc(manager) -> list:
    from kerasdrop.serving.protocols.oip.grpc_service import open_inference_services

    return open_inference_services(manager)


PROTOCOLS: list[Protocol] = [
    Protocol("tf-serving", _tf_serving_rest, _tf_serving_grpc),
    Protocol("open-inference", _open_inference_rest, _open_inference_grpc),
]


def rest_routers(manager) -> list:
    """Every protocol's REST routers, in registration order."""
    return [router for protocol in PROTOCOLS for router in protocol.rest_routers(manager)]


def grpc_services(manager) -> list:
    """Every protocol's gRPC services, in registration order."""
    return [service for protocol in PROTOCOLS for service in protocol.grpc_services(manager)]
