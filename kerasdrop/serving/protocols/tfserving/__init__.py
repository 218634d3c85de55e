"""TF Serving's own protocol without a transport (core.py), on its REST API (rest.py, api_rest.md) and
its gRPC PredictionService and ModelService (grpc_service.py, the tensorflow-serving-api protos),
TensorProto conversion (tensors.py) and tf.Example handling for Classify and Regress (examples.py).
Imports models/ only.
"""
