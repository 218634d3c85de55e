"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, inference_grpc.md) on
the same gRPC server as TF Serving's PredictionService; messages and servicer base from `messages`.

Inputs come as typed `contents` or as `raw_input_contents` (what tritonclient sends); outputs are
answered in the form the inputs came in (raw for raw, as Triton answers). Errors are gRPC statuses:
INVALID_ARGUMENT for a bad request, NOT_FOUND for an unknown model or version, UNAVAILABLE for a
model in the repository with no version ready, RESOURCE_EXHAUSTED
when over the admission limit, DEADLINE_EXCEEDED past the deadline.
"""

from __future__ import annotations

import time

import numpy as np

from kerasdrop.serving.errors import ServingError, grpc_status_code, invalid
from kerasdrop.serving.protocols.oip import core, datatypes

# The InferTensorContents field that carries each datatype (FP16 travels only as raw contents).
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _parameters(parameters) -> dict:
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in parameters.items()
            if value.WhichOneof("parameter_choice")}


def _from_contents(tensor, count: int) -> np.ndarray:
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        raise invalid(f"Input {tensor.name!r}: {tensor.datatype} data must be sent as raw_input_contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise invalid(f"Input {tensor.name!r} has shape {list(tensor.shape)} ({count} elements) but its "
                      f"contents.{field} carries {len(values)} values")
    dtype = datatypes.numpy_dtype(tensor.datatype)
    return np.array(list(values), dtype=dtype)


def _decoder(tensor, raw: bytes | None):
    if raw is not None:
        return lambda count: datatypes.from_buffer(tensor.name, tensor.datatype, raw, [count])
    return lambda count: _from_contents(tensor, count)


def infer_request(message) -> core.InferRequest:
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise invalid(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; send one "
                      "per input, in the inputs' order")
    if raw and any(tensor.HasField("contents") for tensor in message.inputs):
        raise invalid("Send every input either as raw_input_contents or as contents, not both")
    inputs = [core.Tensor(tensor.name, tensor.datatype, list(tensor.shape),
                          _decoder(tensor, raw[index] if raw else None), _parameters(tensor.parameters))
              for index, tensor in enumerate(message.inputs)]
    outputs = [core.Tensor(output.name, "", [], None, _parameters(output.parameters)) for output in message.outputs]
    return core.InferRequest(message.model_name, message.model_version, message.id,
                             _parameters(message.parameters), inputs, outputs or None)


def infer_response(response: core.InferResponse, raw: bool):
    """The response message; every output raw, or every one in typed contents (the spec allows no mix)."""
    from kerasdrop.serving.protocols.oip.messages import messages as pb2

    message = pb2.ModelInferResponse(model_name=response.model_name, model_version=response.model_version,
                                     id=response.id)
    raw = raw or any(tensor.datatype not in _CONTENTS for tensor in response.outputs)
    for tensor in response.outputs:
        output = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if raw:
            message.raw_output_contents.append(datatypes.to_buffer(tensor.data))
        else:
            values = tensor.data.reshape(-1)
            getattr(output.contents, _CONTENTS[tensor.datatype]).extend(
                list(values) if tensor.datatype == "BYTES" else values.tolist())
    return message


def _timeout(context) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e6 else None


def _model_infer(manager, request, context):
    response = core.infer(manager, infer_request(request), "grpc", _timeout(context))
    return infer_response(response, raw=bool(request.raw_input_contents))


def _model_metadata(manager, request, context):
    from kerasdrop.serving.protocols.oip.messages import messages as pb2

    metadata = core.model_metadata(manager, request.name, request.version)
    return pb2.ModelMetadataResponse(
        name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
        inputs=[pb2.ModelMetadataResponse.TensorMetadata(**tensor) for tensor in metadata["inputs"]],
        outputs=[pb2.ModelMetadataResponse.TensorMetadata(**tensor) for tensor in metadata["outputs"]])


def _simple(manager, request, context, method: str):
    from kerasdrop.serving.protocols.oip.messages import messages as pb2

    if method == "ServerLive":
        return pb2.ServerLiveResponse(live=True)
    if method == "ServerReady":
        return pb2.ServerReadyResponse(ready=manager.readiness()[0])
    if method == "ModelReady":
        return pb2.ModelReadyResponse(ready=core.model_ready(manager, request.name, request.version))
    metadata = core.server_metadata()
    return pb2.ServerMetadataResponse(name=metadata["name"], version=metadata["version"],
                                      extensions=metadata["extensions"])


_MODEL_APIS = ("v2_infer", "v2_metadata", "v2_ready")  # counted in the metrics, like TF Serving's APIs


def _guarded(manager, api: str, function):
    """A servicer method: runs `function`, records the metrics, turns a ServingError into its status."""
    def method(self, request, context):
        started, code = time.perf_counter(), "INTERNAL"
        try:
            response = function(manager, request, context)
            code = "OK"
            return response
        except ServingError as error:
            code = error.code
            context.abort(grpc_status_code(error.code), error.message)
        finally:
            if api in _MODEL_APIS:
                name = getattr(request, "model_name", "") or getattr(request, "name", "")
                version = getattr(request, "model_version", "") or getattr(request, "version", "")
                manager.record_request(name, version, f"grpc:{api}", code, time.perf_counter() - started)
    return method


def make_servicer(manager):
    """`inference.GRPCInferenceService` over `manager`: the protocol's six methods; the rest of Triton's
    service (repository, shared memory, statistics...) left to the generated base, which answers UNIMPLEMENTED."""
    from kerasdrop.serving.protocols.oip.messages import GRPCInferenceServiceServicer

    def simple(method):
        return lambda manager_, request, context: _simple(manager_, request, context, method)

    methods = {"ModelInfer": _guarded(manager, "v2_infer", _model_infer),
               "ModelMetadata": _guarded(manager, "v2_metadata", _model_metadata),
               "ModelReady": _guarded(manager, "v2_ready", simple("ModelReady"))}
    for method in ("ServerLive", "ServerReady", "ServerMetadata"):
        methods[method] = _guarded(manager, method, simple(method))
    return type("GRPCInferenceService", (GRPCInferenceServiceServicer,), methods)()


def open_inference_services(manager) -> list:
    """`[(add_GRPCInferenceServiceServicer_to_server, servicer)]` for `make_grpc_server` (registered in protocols/registry.py)."""
    from kerasdrop.serving.protocols.oip.messages import (
        add_GRPCInferenceServiceServicer_to_server,
    )

    return [(add_GRPCInferenceServiceServicer_to_server, make_servicer(manager))]
