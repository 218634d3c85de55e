"""`kerasdrop serve`: TF Serving's REST and gRPC APIs and the Open Inference Protocol over a model
repository, in three layers, each a package that imports only the ones below it:

    process/    the processes and their sockets: HTTP (uvicorn) and gRPC (grpc.aio) fronts, ports,
                the worker processes and their supervision, shared admission counts, metrics peers
    protocols/  what a request means: TF Serving's REST and gRPC (tfserving/), the Open Inference
                Protocol (oip/), each over a transport-free core.py; the one request wrapper
                (recorded.py), JSON bodies, each protocol registered once (registry.py)
    models/     the model lifecycle: repository and models.config, the manager with its version
                policy, backends (tf, onnx, onnx-int8, openvino), golden replay, cross-request isolation
                at load, batching, admission, metrics, request logs (logging_config), label promotion
and two leaves every layer reads: errors.py (a request's error and its status in each protocol)
and limits.py (the bound on each resource a request can claim, with its default and flag).

A request's path. REST: a connection lands on one worker's socket of the port's SO_REUSEPORT group
(process/ports.py); uvicorn parses it with httptools (process/uvicorn_protocol.py) and calls
`HttpApp.__call__` (process/http_app.py), which picks the first router that `claims(path)` and
reads the body within --max-body-bytes; `TfServingRest.answer` (protocols/tfserving/rest.py) runs on
the app's thread pool (or on the loop for a cheap model) and makes the request's `Call`, the one
request wrapper (protocols/recorded.py: timing, error to status, metrics), which runs `handle`:
`route(path)`, `parse_version`, then `parse_body` (protocols/json_body.py), `core.resolve`
(protocols/tfserving/core.py, over `ModelManager.resolve` in models/manager.py: name, version or
label to a LoadedVersion), `_decode` (signature, `validate_inputs` in models/inputs.py), and
`core.predict`, whose `ModelManager.run` takes an admission slot (models/admission.py) and calls
the backend's `run` (models/backends.py) directly or through a `Batcher` (models/batching.py);
`predict_response` turns the arrays into JSON, and the wrapper records the metric and returns the
bytes to the app, which sends them. gRPC: grpc.aio (process/grpc_server.py) hands the call to
`_AsyncServicer`, which runs the protocol's synchronous servicer method (`PredictionService.Predict`
in protocols/tfserving/grpc_service.py, inside the same wrapper): `_predict` -> `core.resolve`,
`tensor_to_array` (protocols/tfserving/tensors.py), `core.predict` as above, `array_to_proto` into
the response. The Open Inference Protocol takes the same path through protocols/oip/ (rest.py,
grpc_service.py over the transport-free core.py).
"""
