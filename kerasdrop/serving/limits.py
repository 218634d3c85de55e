"""The bounds on what one request may claim of a server, in one place: each a default here, a
`kerasdrop serve` flag (cli/serving.py) and a field of ServeConfig (process/server.py).

A leaf of the serving package, read by every layer: the model layer's admission, the protocols'
JSON handling and the process layer's HTTP and gRPC fronts.
"""

from __future__ import annotations

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # --max-body-bytes: a REST body (a 224x224x3 batch of ~50 as JSON)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a gRPC message, either way: the REST body's bound
DEFAULT_MAX_INFLIGHT = 128  # --max-inflight, per model; above the bench's 64 connections, far below a memory problem
DEFAULT_MAX_ELEMENTS = 1 << 24  # --max-elements, per input tensor: 16.7M floats = 64 MiB, resnet at 224x224x3 x 300

# The largest request of a cheap model answered on an event loop (REST and gRPC): JSON of this size
# parses in ~0.5 ms, the most a cheap request holds the loop.
INLINE_MAX_BODY_BYTES = 64 * 1024
