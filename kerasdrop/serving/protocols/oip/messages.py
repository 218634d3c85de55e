"""The Open Inference Protocol's gRPC messages and servicer base, imported here and nowhere else.

They come from tritonclient (a runtime dependency): its generated `tritonclient.grpc.service_pb2` is
Triton's grpc_service.proto, the protocol the Open Inference Protocol's gRPC definition was extracted
from: the same `inference` package, service name, message names and field numbers for the protocol's
subset (tests/serving/protocols/test_oip_messages.py checks them field by field). Triton's service has more
methods (model repository, shared memory, statistics...); the base servicer answers them UNIMPLEMENTED.
To take the messages from elsewhere, change these two imports.
"""

from tritonclient.grpc import service_pb2 as messages  # noqa: F401  (re-exported)
from tritonclient.grpc.service_pb2_grpc import (  # noqa: F401  (re-exported)
    GRPCInferenceServiceServicer,
    GRPCInferenceServiceStub,
    add_GRPCInferenceServiceServicer_to_server,
)
