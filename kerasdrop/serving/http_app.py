"""The HTTP front: a minimal ASGI app for uvicorn (httptools), routing to protocol routers.

A router (TF Serving's REST API today; the Open Inference Protocol can be a second one) has
`claims(path)` and a synchronous `answer(method, path, body) -> (status, bytes, content type)`,
which runs on a thread pool so that JSON and inference work never block the event loop. The app
reads a body only up to the limit (a Content-Length over it is refused before reading; a chunked
body is cut off when it passes the limit) and answers anything it cannot route with 4xx JSON.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

import orjson


def _json_error(status: int, message: str, extra_headers=()) -> tuple[int, bytes, list]:
    return status, orjson.dumps({"error": message}), list(extra_headers)


class BodyTooLarge(Exception):
    pass


class HttpApp:
    def __init__(self, routers, *, max_body_bytes: int, threads: int = 8):
        self.routers = list(routers)
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kerasdrop-http")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        status, body, content_type, headers = await self._answer(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope, receive):
        method, path = scope["method"], scope["path"]
        router = next((r for r in self.routers if r.claims(path)), None)
        if router is None:
            return (*_json_error(404, f"Malformed request: {method} {path}")[:2], "application/json", [])
        try:
            body = await self._read_body(scope, receive)
        except BodyTooLarge as error:
            # The rest of the body is not read: the connection closes after this answer.
            status, data, headers = _json_error(413, str(error), [(b"connection", b"close")])
            return status, data, "application/json", headers
        loop = asyncio.get_running_loop()
        status, data, content_type = await loop.run_in_executor(
            self.executor, functools.partial(router.answer, method, path, body))
        return status, data, content_type, []

    async def _read_body(self, scope, receive) -> bytes:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise BodyTooLarge(f"Request body of {int(value)} bytes exceeds the limit of {limit} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"Request body exceeds the limit of {limit} bytes (read {size} so far)")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
