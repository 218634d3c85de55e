"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`, inference_grpc.md) on
the same gRPC server as TF Serving's PredictionService; messages and servicer base from `messages`.

Inputs come as typed `contents` or as `raw_input_contents` (what tritonclient sends); outputs are
answered in the form the inputs came in (raw for raw, as Triton answers). Errors are gRPC statuses:
INVALID_ARGUMENT for a bad request, NOT_FOUND for an unknown model or version, UNAVAILABLE for a
model in the repository with no version ready, RESOURCE_EXHAUSTED
when over the admission limit, DEADLINE_EXCEEDED past the deadline.
"""

from __future__ import annotations

import numpy as np

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.protocols.oip import core, datatypes
from kerasdrop.serving.protocols.oip.messages import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from kerasdrop.serving.protocols.oip.messages import messages as pb2
from kerasdrop.serving.protocols.recorded import Call, grpc_answer, grpc_timeout

# The InferTensorContents field that carries each datatype (FP16 travels only as raw contents).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _parameters(parameters) -> dict:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice"))
        for key, value in parameters.items()
        if value.WhichOneof("parameter_choice")
    }


def _from_contents(tensor, count: int) -> np.ndarray:
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        raise invalid(f"Input {tensor.name!r}: {tensor.datatype} data must be sent as raw_input_contents")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise invalid(
            f"Input {tensor.name!r} has shape {list(tensor.shape)} ({count} elements) but its "
            f"contents.{field} carries {len(values)} values"
        )
    dtype = datatypes.numpy_dtype(tensor.datatype)
    return np.array(list(values), dtype=dtype)


def _decoder(tensor, raw: bytes | None):
    if raw is not None:
        return lambda count: datatypes.from_buffer(tensor.name, tensor.datatype, raw, [count])
    return lambda count: _from_contents(tensor, count)


def infer_request(message) -> core.InferRequest:
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise invalid(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; send one "
            "per input, in the inputs' order"
        )
    if raw and any(tensor.HasField("contents") for tensor in message.inputs):
        raise invalid("Send every input either as raw_input_contents or as contents, not both")
    inputs = [
        core.Tensor(
            tensor.name,
            tensor.datatype,
            list(tensor.shape),
            _decoder(tensor, raw[index] if raw else None),
            _parameters(tensor.parameters),
        )
        for index, tensor in enumerate(message.inputs)
    ]
    outputs = [
        core.Tensor(output.name, "", [], None, _parameters(output.parameters)) for output in message.outputs
    ]
    return core.InferRequest(
        message.model_name,
        message.model_version,
        message.id,
        _parameters(message.parameters),
        inputs,
        outputs or None,
    )


def infer_response(response: core.InferResponse, raw: bool):
    """The response message; every output raw, or every one in typed contents (the spec allows no mix)."""
    message = pb2.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    raw = raw or any(tensor.datatype not in _CONTENTS for tensor in response.outputs)
    for tensor in response.outputs:
        output = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if raw:
            message.raw_output_contents.append(datatypes.to_buffer(tensor.data))
        else:
            values = tensor.data.reshape(-1)
            getattr(output.contents, _CONTENTS[tensor.datatype]).extend(
                list(values) if tensor.datatype == "BYTES" else values.tolist()
            )
    return message


def _model_infer(call, request, context):
    response = core.infer(call, infer_request(request), "grpc", grpc_timeout(context))
    return infer_response(response, raw=bool(request.raw_input_contents))


def _model_metadata(call, request, context):
    metadata = core.model_metadata(call, request.name, request.version)
    return pb2.ModelMetadataResponse(
        name=metadata["name"],
        versions=metadata["versions"],
        platform=metadata["platform"],
        inputs=[pb2.ModelMetadataResponse.TensorMetadata(**tensor) for tensor in metadata["inputs"]],
        outputs=[pb2.ModelMetadataResponse.TensorMetadata(**tensor) for tensor in metadata["outputs"]],
    )


def _model_ready(call, request, context):
    return pb2.ModelReadyResponse(ready=core.model_ready(call, request.name, request.version))


def _server_live(call, request, context):
    return pb2.ServerLiveResponse(live=True)


def _server_ready(call, request, context):
    return pb2.ServerReadyResponse(ready=call.manager.readiness()[0])


def _server_metadata(call, request, context):
    metadata = core.server_metadata()
    return pb2.ServerMetadataResponse(
        name=metadata["name"], version=metadata["version"], extensions=metadata["extensions"]
    )


class InferenceService(GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService` over a model manager: the protocol's six methods, one per RPC.
    The rest of Triton's service (repository, shared memory, statistics...) is left to the generated
    base, which answers UNIMPLEMENTED. The model methods are counted in the metrics (`grpc:v2_*`),
    like TF Serving's APIs; the server's own (live, ready, metadata) are not."""

    def __init__(self, manager):
        self._manager = manager

    def ServerLive(self, request, context):
        return grpc_answer(Call(self._manager, None, "grpc:ServerLive"), _server_live, request, context)

    def ServerReady(self, request, context):
        return grpc_answer(Call(self._manager, None, "grpc:ServerReady"), _server_ready, request, context)

    def ServerMetadata(self, request, context):
        return grpc_answer(
            Call(self._manager, None, "grpc:ServerMetadata"), _server_metadata, request, context
        )

    def ModelReady(self, request, context):
        return grpc_answer(Call(self._manager, request.name, "grpc:v2_ready"), _model_ready, request, context)

    def ModelMetadata(self, request, context):
        return grpc_answer(
            Call(self._manager, request.name, "grpc:v2_metadata"), _model_metadata, request, context
        )

    def ModelInfer(self, request, context):
        return grpc_answer(
            Call(self._manager, request.model_name, "grpc:v2_infer"), _model_infer, request, context
        )


def make_servicer(manager) -> InferenceService:
    """The protocol's gRPC servicer over `manager`."""
    return InferenceService(manager)


def open_inference_services(manager) -> list:
    """`[(add_GRPCInferenceServiceServicer_to_server, servicer)]` for `make_grpc_server` (registered in
    protocols/registry.py)."""
    return [(add_GRPCInferenceServiceServicer_to_server, InferenceService(manager))]
