"""uvicorn's httptools protocol with the limits a server reachable from a network needs on a request's
head and body, and JSON errors.

httptools sets no limit on a request's head: a 10 MB header line or thousands of headers are
buffered and accepted, and a client that sends its head a byte a second keeps its connection as
long as it likes. Here each connection's head is bounded before it is spent:
- its size (request line + headers) by `max_header_bytes` and the number of header fields by
  `max_header_count`: beyond either, 431 (as nginx, Apache and Node answer) and the connection closes;
  the size is counted per chunk read (asyncio reads at most 256 KiB at a time), so what a head may
  buffer is bounded by the limit plus one read;
- the time from a request's first byte (any byte: a lone CRLF, which the parser skips, too) to its
  head's end by `header_timeout` (slowloris), and the wait for each next piece of its body by
  `body_timeout`: 408 and close; a new connection that sends nothing at all is closed after the
  keep-alive idle time, as an idle kept-alive one is. The timers start only when a read leaves a
  head or body incomplete: a request that arrives in one read (nearly all) costs none.
uvicorn (0.x) also writes its own plain-text 400 for a request httptools cannot parse (a malformed
Content-Length, a broken request line) before any app sees it; every error of this server is
`{"error": ...}`, so that one method is overridden. Checked against uvicorn 0.30-0.55.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kerasdrop.serving import limits

_MESSAGE = (
    "Invalid HTTP request received: expected an HTTP/1.1 request line, headers and a non-negative integer "
    "Content-Length (or chunked body)"
)
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
        self.transport.write(
            b"".join(
                [
                    b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, _REASONS[status]),
                    b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()


class GuardedHttpToolsProtocol(JsonErrorHttpToolsProtocol):
    """One connection. The limits are class attributes (`guarded_protocol` makes a subclass per
    server); 0 turns one off."""

    max_header_bytes = limits.DEFAULT_MAX_HEADER_BYTES
    max_header_count = limits.DEFAULT_MAX_HEADER_COUNT
    header_timeout = limits.DEFAULT_HEADER_TIMEOUT_SECONDS
    body_timeout = limits.DEFAULT_BODY_TIMEOUT_SECONDS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._in_head, self._in_body = True, False
        self._head_bytes, self._header_count, self._head_exact = 0, 0, 0
        self._head_timer = self._body_timer = None
        # A connection that never sends a byte is idle, as a kept-alive one between requests is.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(
            data
        )  # parser callbacks below; a refusal raised in one ends up in send_400_response
        if self.transport.is_closing():
            return
        # Timers only for what one read left incomplete: a request that arrives whole (nearly all of
        # them) starts none. A head's timer runs from its first byte (any byte: a lone CRLF, which
        # the parser skips, too); a body's restarts with every piece.
        if self._in_head and self._head_bytes:
            if self.max_header_bytes and self._head_bytes > self.max_header_bytes:
                self._refuse(
                    431,
                    f"Request header is larger than the limit of {self.max_header_bytes} bytes "
                    "(--max-header-bytes)",
                )
            elif self._head_timer is None and self.header_timeout:
                self._head_timer = self.loop.call_later(self.header_timeout, self._timed_out, "head")
        elif self._in_body and self.body_timeout:
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self.loop.call_later(self.body_timeout, self._timed_out, "body")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count, self._head_exact = 0, 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self.max_header_count and self._header_count > self.max_header_count:
            self._refusal = (
                431,
                f"Request has more than {self.max_header_count} header fields (--max-header-count)",
            )
            raise _Refused()  # stops the parser: httptools re-raises it as a parser error
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        """The head's exact size, parsed piece by piece: a head that arrives whole in one read is
        held to the limit too (the per-read count above bounds what is buffered before parsing)."""
        self._head_exact += size
        if self.max_header_bytes and self._head_exact > self.max_header_bytes:
            self._refusal = (
                431,
                f"Request header is larger than the limit of {self.max_header_bytes} bytes "
                "(--max-header-bytes)",
            )
            raise _Refused()

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body, self._head_bytes = False, True, 0
        self._cancel_timers()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._in_body, self._head_bytes = True, False, 0  # next comes the next request's head
        self._cancel_timers()
        super().on_message_complete()

    def _timed_out(self, part: str) -> None:
        if part == "head":
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refuse(
                    408,
                    f"Request header not received within {self.header_timeout:g} s "
                    "(--header-timeout-seconds)",
                )
        else:
            self._body_timer = None
            if self._in_body and not self.transport.is_closing():
                self._refuse(
                    408, f"Request body stalled: no data for {self.body_timeout:g} s (--body-timeout-seconds)"
                )

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _refuse(self, status: int, message: str) -> None:
        self._cancel_timers()
        super()._refuse(status, message)


class _Refused(Exception):
    pass


def guarded_protocol(
    *,
    max_header_bytes: int = limits.DEFAULT_MAX_HEADER_BYTES,
    max_header_count: int = limits.DEFAULT_MAX_HEADER_COUNT,
    header_timeout: float = limits.DEFAULT_HEADER_TIMEOUT_SECONDS,
    body_timeout: float = limits.DEFAULT_BODY_TIMEOUT_SECONDS,
) -> type:
    """The protocol class for uvicorn's `http=` with these limits (0 turns one off; with all three off,
    uvicorn's own protocol with JSON errors, as before the limits: the benchmark's reference)."""
    if not (max_header_bytes or max_header_count or header_timeout or body_timeout):
        return JsonErrorHttpToolsProtocol
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "max_header_count": max_header_count,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
        },
    )
