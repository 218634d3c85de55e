"""uvicorn's httptools protocol with the limits a server reachable from a network needs on a request's
head, and JSON errors.

httptools sets no limit on a request's head: a 10 MB header line or thousands of headers are
buffered and accepted, and a client that sends its head a byte a second keeps its connection as
long as it likes. Here each connection's head is bounded before it is spent:
- its size (request line + headers) by `max_header_bytes` and the number of header fields by
  `max_header_count`: beyond either, 431 (as nginx, Apache and Node answer) and the connection closes;
  the size is counted per chunk read (asyncio reads at most 256 KiB at a time), so what a head may
  buffer is bounded by the limit plus one read;
- the time from a connection's or a request's first byte to its head's end by `header_timeout`
  (slowloris): 408 and close; a new connection that sends nothing at all is closed after the
  keep-alive idle time, as an idle kept-alive one is.
uvicorn (0.x) also writes its own plain-text 400 for a request httptools cannot parse (a malformed
Content-Length, a broken request line) before any app sees it; every error of this server is
`{"error": ...}`, so that one method is overridden. Checked against uvicorn 0.30-0.55.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kerasdrop.serving.limits import (
    DEFAULT_HEADER_TIMEOUT_SECONDS,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADER_COUNT,
)

_MESSAGE = ("Invalid HTTP request received: expected an HTTP/1.1 request line, headers and a non-negative integer "
            "Content-Length (or chunked body)")
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol with its parse errors as JSON."""

    _refusal: tuple[int, str] | None = None

    def send_400_response(self, msg: str) -> None:  # uvicorn's hook for parse errors (and refusals below)
        status, message = self._refusal or (400, _MESSAGE)
        self._refuse(status, message)

    def _refuse(self, status: int, message: str) -> None:
        """Answers `status` with a JSON error and closes the connection (its head is not read further)."""
        body = orjson.dumps({"error": message})
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, _REASONS[status]),
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n", body]))
        self.transport.close()


class GuardedHttpToolsProtocol(JsonErrorHttpToolsProtocol):
    """One connection. The limits are class attributes (`guarded_protocol` makes a subclass per
    server); 0 turns one off."""

    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    max_header_count = DEFAULT_MAX_HEADER_COUNT
    header_timeout = DEFAULT_HEADER_TIMEOUT_SECONDS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        self._head_timer = None
        # A connection that never sends a byte is idle, as a kept-alive one between requests is.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)  # parser callbacks below; a refusal raised in one ends up in send_400_response
        if self._in_head and self.max_header_bytes and self._head_bytes > self.max_header_bytes \
                and not self.transport.is_closing():
            self._refuse(431, f"Request header is larger than the limit of {self.max_header_bytes} bytes "
                              "(--max-header-bytes)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count = True, 0
        if self._head_timer is None and self.header_timeout:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self.max_header_count and self._header_count > self.max_header_count:
            self._refusal = (431, f"Request has more than {self.max_header_count} header fields "
                                  "(--max-header-count)")
            raise _Refused()  # stops the parser: httptools re-raises it as a parser error
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"Request header not received within {self.header_timeout:g} s "
                              "(--header-timeout-seconds)")

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, message: str) -> None:
        self._cancel_head_timer()
        super()._refuse(status, message)


class _Refused(Exception):
    pass


def guarded_protocol(*, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                     max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
                     header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS) -> type:
    """The protocol class for uvicorn's `http=` with these limits (0 turns one off; with all three off,
    uvicorn's own protocol with JSON errors, as before the limits: the benchmark's reference)."""
    if not (max_header_bytes or max_header_count or header_timeout):
        return JsonErrorHttpToolsProtocol
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "max_header_bytes": max_header_bytes, "max_header_count": max_header_count, "header_timeout": header_timeout})

