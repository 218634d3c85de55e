"""The Open Inference Protocol (KServe "v2") beside TF Serving's protocol, over the same model manager.

`core` is the protocol without a transport (metadata, readiness, infer on numpy tensors); `rest` and
`grpc_service` put it on the REST port and the gRPC port. `open_inference_grpc.proto` is the official
definition (github.com/kserve/open-inference-protocol, specification/protocol, commit d49cc23;
Apache-2.0, LICENSE beside it); `make oip-stubs` regenerates the `_pb2` modules from it.
"""
