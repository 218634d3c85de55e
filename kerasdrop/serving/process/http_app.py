"""The HTTP front: a minimal ASGI app for uvicorn (httptools), routing to protocol routers.

A router (one per protocol, registered in protocols/registry.py) is a `RestRouter`: `claims(path)`
and a synchronous `answer(method, path, body, headers) -> (status, bytes, content type, headers)`,
which runs on a thread pool so that JSON and inference work never block the event loop for long:
only a request whose router says `cheap(method, path)` (a model measured to run a row in well under
a millisecond) with a body of at most INLINE_MAX_BODY_BYTES is answered on the loop itself, where
the two thread switches of the pool cost more than the work (docs/benchmarks.md, "Serving latency"). The app
reads a body only up to the limit (a Content-Length over it is refused before reading; a chunked
body is cut off when it passes the limit) and answers anything it cannot route with 4xx JSON.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import orjson

from kerasdrop.serving.limits import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    INLINE_MAX_BODY_BYTES,
)
from kerasdrop.serving.protocols.registry import RestRouter


def _json_error(status: int, message: str, close: bool = False) -> tuple[int, bytes, str, list]:
    """An answer `(status, body, content type, extra headers)` of `{"error": message}`; `close` ends
    the connection after it."""
    return (
        status,
        orjson.dumps({"error": message}),
        "application/json",
        [(b"connection", b"close")] if close else [],
    )


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The connection closed before the body was complete (the client left, or the protocol cut a
    stalled body with 408): there is nothing to run and no one to answer."""


class HttpApp:
    def __init__(
        self,
        routers: list[RestRouter],
        *,
        max_body_bytes: int,
        threads: int = 8,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    ):
        self.routers = list(routers)
        self.max_body_bytes = max_body_bytes
        # Requests being answered (all on this app's event loop, so a plain count). Taken once the
        # body is in: a client trickling its body holds its connection and what it sent, not a slot.
        self.max_concurrent = max_concurrent
        self.concurrent = 0
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kerasdrop-http")

    def close(self) -> None:
        """Ends what the routers started."""
        for router in self.routers:
            router.close()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        status, body, content_type, headers = await self._answer(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope, receive):
        method, path = scope["method"], scope["path"]
        router = next((r for r in self.routers if r.claims(path)), None)
        if router is None:
            return _json_error(404, f"Malformed request: {method} {path}")
        try:
            body = await self._read_body(scope, receive)
        except BodyTooLarge as error:
            await self._discard_rest(receive)
            return _json_error(413, str(error), close=True)
        except ClientGone:  # the answer goes nowhere (uvicorn drops it); sent so the cycle ends as usual
            return _json_error(400, "The connection closed before the request body was complete")
        if self.max_concurrent and self.concurrent >= self.max_concurrent:  # before it queues for a thread
            return _json_error(
                429,
                f"This worker already has {self.max_concurrent} requests in flight "
                "(--max-concurrent-requests); retry later",
            )
        self.concurrent += 1
        try:
            return await self._run(router, method, path, body, scope)
        finally:
            self.concurrent -= 1

    async def _run(self, router: RestRouter, method: str, path: str, body: bytearray, scope):
        if len(body) <= INLINE_MAX_BODY_BYTES and router.cheap(method, path):
            return router.answer(method, path, body, scope["headers"])
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, router.answer, method, path, body, scope["headers"])

    async def _read_body(self, scope, receive) -> bytearray:
        """The body, refused as soon as it passes the limit. Its buffer is sized from Content-Length
        (no second copy of a large body) once half of it has arrived: claimed before, a header
        declaring 64 MiB with no body behind it took 64 MiB at once, per connection."""
        limit, declared = self.max_body_bytes, None
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
                if declared > limit:
                    raise BodyTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes")
        pieces, body, size = [], None, 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if size + len(chunk) > limit:
                raise BodyTooLarge(
                    f"Request body exceeds the limit of {limit} bytes (read {size + len(chunk)} so far)"
                )
            if body is None and declared and 2 * (size + len(chunk)) >= declared:
                body = bytearray(max(declared, size + len(chunk)))
                body[:size] = b"".join(pieces)
                pieces = None
            if body is None:
                pieces.append(chunk)
            elif size + len(chunk) <= len(body):
                body[size : size + len(chunk)] = chunk
            else:
                body += chunk
            size += len(chunk)
            if not message.get("more_body", False):
                break
        if body is None:
            return bytearray(b"".join(pieces))
        del body[size:]
        return body

    async def _discard_rest(self, receive, seconds: float = 2.0) -> None:
        """Reads (and drops) what the client is still sending, for a bounded time and size, so that
        closing the connection does not reset it before the 413 arrives (a close with unread input
        makes the kernel send RST, which discards the answer)."""
        budget = 4 * self.max_body_bytes

        async def drain():
            nonlocal budget
            while budget > 0:
                message = await receive()
                budget -= len(message.get("body", b""))
                if message["type"] == "http.disconnect" or not message.get("more_body", False):
                    return

        try:
            await asyncio.wait_for(drain(), seconds)
        except TimeoutError:
            pass

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
