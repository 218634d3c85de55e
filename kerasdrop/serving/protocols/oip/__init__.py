"""The Open Inference Protocol (KServe "v2") beside TF Serving's protocol, over the same model manager.

`core` is the protocol without a transport (metadata, readiness, infer on numpy tensors); `rest` and
`grpc_service` put it on the REST port and the gRPC port; `messages` is where the gRPC messages and
servicer base come from (tritonclient's generated `inference` package, Triton's superset of the protocol).
"""
