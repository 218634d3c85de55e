"""TF Serving's gRPC API with the official tensorflow-serving-api protos and service stubs.

PredictionService: Predict, Classify, Regress, GetModelMetadata; ModelService: GetModelStatus.
Any TF Serving client (`prediction_service_pb2_grpc.PredictionServiceStub`) works against it.
Each method decodes its request, calls the transport-free core (core.py) and encodes the response,
inside the one request wrapper (protocols/recorded.py). The servicers are synchronous;
process/grpc_server.py runs them on grpc.aio.
"""

from __future__ import annotations

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.protocols.recorded import Call, grpc_answer, grpc_timeout
from kerasdrop.serving.protocols.tfserving import core, examples
from kerasdrop.serving.protocols.tfserving.tensors import (
    array_to_proto,
    tensor_to_array,
)


def _resolve(call, model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    return core.resolve(call, model_spec.name, version, label)


def _echo(response_spec, loaded, signature: str) -> None:
    response_spec.name = loaded.name
    response_spec.version.value = loaded.version
    response_spec.signature_name = signature


def _examples(request_input, max_elements: int):
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return list(request_input.example_list.examples)
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        examples.check_context_size(
            len(with_context.examples), examples.proto_context_values(with_context.context), max_elements
        )
        merged = []
        for example in request_input.example_list_with_context.examples:
            combined = type(example)()
            combined.CopyFrom(request_input.example_list_with_context.context)
            combined.MergeFrom(example)
            merged.append(combined)
        return merged
    raise invalid("Input must hold example_list or example_list_with_context")


def _predict_inputs(manager, signature_def, request) -> dict:
    order = sorted(signature_def.inputs)
    inputs = {}
    for key, proto in request.inputs.items():
        if key not in signature_def.inputs:
            continue  # validate_inputs names every unexpected input in one message
        inputs[key] = tensor_to_array(
            key, order.index(key), proto, signature_def.inputs[key], manager.admission.max_elements
        )
    return inputs | {key: None for key in request.inputs if key not in signature_def.inputs}


def _check_output_filter(wanted, outputs) -> None:
    """TF Serving's checks of `output_filter` (predict_util), in its order, against the signature's
    `outputs` (before the run, as TF Serving does)."""
    seen = set()
    for key in wanted:
        if key not in outputs:
            raise invalid(f"output tensor alias not found in signature: {key}")
        if key in seen:
            raise invalid(f"duplicate output tensor alias: {key}")
        seen.add(key)


def _predict(call, request, context):
    from tensorflow_serving.apis import predict_pb2

    loaded = _resolve(call, request.model_spec)
    signature = request.model_spec.signature_name or core.DEFAULT_SIGNATURE
    signature_def = core.signature_def(loaded, signature, "grpc")
    inputs = _predict_inputs(call.manager, signature_def, request)
    _check_output_filter(request.output_filter, signature_def.outputs)  # before the run
    outputs = core.predict(call, loaded, signature, inputs, "grpc", grpc_timeout(context))
    response = predict_pb2.PredictResponse()
    _echo(response.model_spec, loaded, signature)
    for key in list(request.output_filter) or list(outputs):
        array_to_proto(outputs[key], response.outputs[key])
    return response


def _decode_examples(call, request, verb: str):
    """`(loaded, signature, inputs)` of a Classify or Regress request."""
    loaded = _resolve(call, request.model_spec)
    signature = request.model_spec.signature_name or core.DEFAULT_SIGNATURE
    signature_def = core.signature_def(loaded, signature, "grpc", verb)
    request_examples = _examples(request.input, call.manager.admission.max_elements)
    return loaded, signature, core.examples_inputs(signature_def, request_examples)


def _classify(call, request, context):
    from tensorflow_serving.apis import classification_pb2

    loaded, signature, inputs = _decode_examples(call, request, "classify")
    rows = core.classify(call, loaded, signature, inputs, "grpc", grpc_timeout(context))
    response = classification_pb2.ClassificationResponse()
    _echo(response.model_spec, loaded, signature)
    for row in rows:
        classifications = response.result.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=score)
    return response


def _regress(call, request, context):
    from tensorflow_serving.apis import regression_pb2

    loaded, signature, inputs = _decode_examples(call, request, "regress")
    values = core.regress(call, loaded, signature, inputs, "grpc", grpc_timeout(context))
    response = regression_pb2.RegressionResponse()
    _echo(response.model_spec, loaded, signature)
    for value in values:
        response.result.regressions.add(value=value)
    return response


def _metadata(call, request, context):
    from tensorflow_serving.apis import get_model_metadata_pb2

    loaded = _resolve(call, request.model_spec)
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise invalid(f"Metadata field(s) {fields} not supported; expected exactly ['signature_def']")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _echo(response.model_spec, loaded, "")
    response.model_spec.ClearField("signature_name")
    response.metadata["signature_def"].Pack(core.metadata(loaded))
    return response


def _model_status(call, request, context):
    from tensorflow_serving.apis import get_model_status_pb2

    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in core.model_status(call, spec.name, version, label):
        status = response.model_version_status.add()
        status.version = int(entry["version"])
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response


class PredictionService:
    """TF Serving's `tensorflow.serving.PredictionService`, one method per RPC it answers.

    Registered with the generated `add_PredictionServiceServicer_to_server`; the RPC it leaves out
    (MultiInference) answers UNIMPLEMENTED (process/grpc_server.py), as the generated base would.
    The base itself is not a base class here: importing it imports TensorFlow, which this module
    leaves to the functions that need it.
    """

    def __init__(self, manager):
        self.manager = manager

    def Predict(self, request, context):
        return grpc_answer(
            Call(self.manager, request.model_spec.name, "grpc:predict"), _predict, request, context
        )

    def Classify(self, request, context):
        return grpc_answer(
            Call(self.manager, request.model_spec.name, "grpc:classify"), _classify, request, context
        )

    def Regress(self, request, context):
        return grpc_answer(
            Call(self.manager, request.model_spec.name, "grpc:regress"), _regress, request, context
        )

    def GetModelMetadata(self, request, context):
        return grpc_answer(
            Call(self.manager, request.model_spec.name, "grpc:metadata"), _metadata, request, context
        )


class ModelService:
    """TF Serving's `tensorflow.serving.ModelService`: GetModelStatus (HandleReloadConfigRequest
    answers UNIMPLEMENTED, as PredictionService's MultiInference does)."""

    def __init__(self, manager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        return grpc_answer(
            Call(self.manager, request.model_spec.name, "grpc:status"), _model_status, request, context
        )


def tf_serving_services(manager) -> list:
    """TF Serving's PredictionService and ModelService over `manager`, as `(add_XServicer_to_server,
    servicer)` pairs for `make_grpc_server` (the official generated registration functions)."""
    from tensorflow_serving.apis import (
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    return [
        (prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server, PredictionService(manager)),
        (model_service_pb2_grpc.add_ModelServiceServicer_to_server, ModelService(manager)),
    ]
