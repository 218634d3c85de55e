"""uvicorn's httptools protocol, answering unparseable requests with 400 JSON instead of text/plain.

uvicorn (0.x) writes its own plain-text 400 for a request httptools cannot parse (a malformed
Content-Length, a broken request line) before any app sees it; every error of this server is
`{"error": ...}`, so this overrides that one method. Checked against uvicorn 0.30-0.54.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_MESSAGE = ("Invalid HTTP request received: expected an HTTP/1.1 request line, headers and a non-negative integer "
            "Content-Length (or chunked body)")


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:  # uvicorn's hook for parse errors
        body = orjson.dumps({"error": _MESSAGE})
        self.transport.write(b"".join([
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n", body]))
        self.transport.close()
