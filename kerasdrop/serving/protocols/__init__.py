"""The protocols `kerasdrop serve` speaks, over the model layer: TF Serving's REST and gRPC (tfserving/),
the Open Inference Protocol (oip/), the one request wrapper every adapter answers in (recorded.py), the
JSON body handling both REST routers share, and the one place each protocol is registered (registry.py).
Imports serving's leaves and models/, never process/.
"""

from kerasdrop.serving.protocols.registry import (
    PROTOCOLS,
    Protocol,
    grpc_services,
    rest_routers,
)

__all__ = ["PROTOCOLS", "Protocol", "grpc_services", "rest_routers"]
