"""The bounds on what one request may claim of a server, in one place: each a default here, a
`kerasdrop serve` flag (cli/serving.py) and a field of ServeConfig (process/server.py).

A leaf of the serving package, read by every layer: the model layer's admission, the protocols'
JSON handling and the process layer's HTTP and gRPC fronts.
"""

from __future__ import annotations

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # --max-body-bytes: a REST body (a 224x224x3 batch of ~50 as JSON)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a gRPC message, either way: the REST body's bound
DEFAULT_MAX_CONCURRENT_REQUESTS = (
    256  # --max-concurrent-requests: per worker, REST requests and gRPC calls each
)
DEFAULT_MAX_INFLIGHT = (
    128  # --max-inflight, per model; above the bench's 64 connections, far below a memory problem
)
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096  # --max-image-pixels, decoded, summed over one request's images
DEFAULT_MAX_ELEMENTS = (
    1 << 24
)  # --max-elements, per input tensor: 16.7M floats = 64 MiB, resnet at 224x224x3 x 300

# The largest request of a cheap model answered on an event loop (REST and gRPC): JSON of this size
# parses in ~0.5 ms, the most a cheap request holds the loop.
INLINE_MAX_BODY_BYTES = 64 * 1024

# A REST request's head (request line + headers), bounded before it is buffered (process/uvicorn_protocol.py).
DEFAULT_MAX_HEADER_BYTES = 32 * 1024  # --max-header-bytes: nginx's default buffers (4 x 8 KiB); then 431
DEFAULT_MAX_HEADER_COUNT = 100  # --max-header-count: Apache's LimitRequestFields; then 431
DEFAULT_HEADER_TIMEOUT_SECONDS = (
    10.0  # --header-timeout-seconds: from a request's first byte to its head's end; then 408
)
DEFAULT_BODY_TIMEOUT_SECONDS = (
    10.0  # --body-timeout-seconds: the longest wait for the next piece of a body; then 408
)
DEFAULT_KEEP_ALIVE_SECONDS = (
    5.0  # --keep-alive-seconds: an idle connection (kept alive, or new and silent) is closed
)


# The gRPC port's HTTP/2 connections (process/grpc_server.py; docs/http2.md has the measurements).
# --max-concurrent-streams: streams one connection may have open, counted until core has freed them,
# so a client resetting streams as fast as it opens them (rapid reset) holds at most this many
# (other streams are refused at once). 100: Envoy's edge-proxy guidance (nginx's default is 128);
# far above what one client needs (the bench's 16 streams), far below a memory problem (a held-open
# stream costs ~18 KB: 20,000 of them grew a server by 353 MiB, bench/serve_exposed.py).
DEFAULT_MAX_CONCURRENT_STREAMS = 100
# --max-connection-age-seconds: every gRPC connection is closed with GOAWAY after this (+-10%, gRPC
# core's jitter), its calls in flight given --drain-seconds to finish; clients reconnect unnoticed.
# Bounds how long one connection (an abusive one included) keeps what it holds.
DEFAULT_MAX_CONNECTION_AGE_SECONDS = 300.0


# Request logs (models.config logging_config; models/request_log.py): what sampled requests may claim.
# --request-log-queue: samples waiting for the writer (~1 s of a busy model); beyond it dropped, counted.
DEFAULT_REQUEST_LOG_QUEUE = 1024
# --request-log-file-bytes: a log file is rotated at this size (thousands of 224x224x3 requests).
DEFAULT_REQUEST_LOG_FILE_BYTES = 64 * 1024 * 1024
# --request-log-total-bytes: all files of one prefix; beyond it the oldest are deleted, so a disk stays safe.
DEFAULT_REQUEST_LOG_TOTAL_BYTES = 1024 * 1024 * 1024
