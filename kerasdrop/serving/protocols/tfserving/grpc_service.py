"""TF Serving's gRPC API with the official tensorflow-serving-api protos and service stubs.

PredictionService: Predict, Classify, Regress, GetModelMetadata; ModelService: GetModelStatus.
Any TF Serving client (`prediction_service_pb2_grpc.PredictionServiceStub`) works against it.
The servicers are synchronous (grpcio's generated bases); process/grpc_server.py runs them on grpc.aio.
"""

from __future__ import annotations

import time

from kerasdrop.serving.errors import ServingError, invalid
from kerasdrop.serving.models.backends import find_signature, signature_def_map
from kerasdrop.serving.protocols.tfserving import examples
from kerasdrop.serving.protocols.tfserving.tensors import (
    array_to_proto,
    tensor_to_array,
)


def _status_code(code: str):
    import grpc

    return getattr(grpc.StatusCode, code, grpc.StatusCode.INTERNAL)


def _spec(manager, model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    if not model_spec.name:
        raise invalid("model_spec.name is required")
    return manager.resolve(model_spec.name, version, label)


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
        examples.check_context_size(len(with_context.examples), examples.proto_context_values(with_context.context),
                                    max_elements)
        merged = []
        for example in request_input.example_list_with_context.examples:
            combined = type(example)()
            combined.CopyFrom(request_input.example_list_with_context.context)
            combined.MergeFrom(example)
            merged.append(combined)
        return merged
    raise invalid("Input must hold example_list or example_list_with_context")


def _timeout(context) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e6 else None


def _predict_inputs(manager, loaded, signature: str, request) -> dict:
    signature_def = find_signature(loaded.backend, signature, "grpc")
    order = sorted(signature_def.inputs)
    inputs = {}
    for key, proto in request.inputs.items():
        if key not in signature_def.inputs:
            continue  # validate_inputs names every unexpected input in one message
        inputs[key] = tensor_to_array(key, order.index(key), proto, signature_def.inputs[key],
                                      manager.admission.max_elements)
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


def _predict(manager, request, context):
    from tensorflow_serving.apis import predict_pb2

    loaded = _spec(manager, request.model_spec)
    signature = request.model_spec.signature_name or "serving_default"
    inputs = _predict_inputs(manager, loaded, signature, request)
    _check_output_filter(request.output_filter, find_signature(loaded.backend, signature, "grpc").outputs)  # no run
    outputs = manager.run(loaded, signature, inputs, "grpc", _timeout(context))
    wanted = list(request.output_filter) or list(outputs)
    response = predict_pb2.PredictResponse()
    _echo(response.model_spec, loaded, signature)
    for key in wanted:
        array_to_proto(outputs[key], response.outputs[key])
    return response


def _run_examples(manager, request, context, method: str):
    loaded = _spec(manager, request.model_spec)
    signature = request.model_spec.signature_name or "serving_default"
    signature_def = find_signature(loaded.backend, signature, "grpc")
    examples.check_method(signature_def, signature, method)
    (input_name,) = list(signature_def.inputs)
    serialized = examples.serialized_examples(_examples(request.input, manager.admission.max_elements))
    return loaded, signature, manager.run(loaded, signature, {input_name: serialized}, "grpc", _timeout(context))


def _classify(manager, request, context):
    from tensorflow_serving.apis import classification_pb2

    loaded, signature, outputs = _run_examples(manager, request, context, "tensorflow/serving/classify")
    response = classification_pb2.ClassificationResponse()
    _echo(response.model_spec, loaded, signature)
    for row in examples.classification_results(outputs):
        classifications = response.result.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=score)
    return response


def _regress(manager, request, context):
    from tensorflow_serving.apis import regression_pb2

    loaded, signature, outputs = _run_examples(manager, request, context, "tensorflow/serving/regress")
    response = regression_pb2.RegressionResponse()
    _echo(response.model_spec, loaded, signature)
    for value in examples.regression_results(outputs):
        response.result.regressions.add(value=value)
    return response


def _metadata(manager, request, context):
    from tensorflow_serving.apis import get_model_metadata_pb2

    loaded = _spec(manager, request.model_spec)
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise invalid(f"Metadata field(s) {fields} not supported; expected exactly ['signature_def']")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _echo(response.model_spec, loaded, "")
    response.model_spec.ClearField("signature_name")
    response.metadata["signature_def"].Pack(signature_def_map(loaded.backend))
    return response


def _model_status(manager, request, context):
    from tensorflow_serving.apis import get_model_status_pb2

    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in manager.status(spec.name, version, label):
        status = response.model_version_status.add()
        status.version = int(entry["version"])
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response


def _guarded(manager, api: str, function):
    """A servicer method: runs `function`, records the metrics, turns a ServingError into its status."""
    def method(self, request, context):
        started = time.perf_counter()
        name = getattr(getattr(request, "model_spec", None), "name", "")
        try:
            response = function(manager, request, context)
        except ServingError as error:
            manager.record_request(name, "", f"grpc:{api}", error.code, time.perf_counter() - started)
            context.abort(_status_code(error.code), error.message)
        spec = getattr(response, "model_spec", None)
        version = spec.version.value if spec is not None and spec.HasField("version") else ""
        manager.record_request(name, version, f"grpc:{api}", "OK", time.perf_counter() - started)
        return response
    return method


def tf_serving_services(manager) -> list:
    """TF Serving's PredictionService and ModelService over `manager` (the official generated bases),
    as `(add_XServicer_to_server, servicer)` pairs for `make_grpc_server`."""
    from tensorflow_serving.apis import (
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    prediction = type("PredictionService", (prediction_service_pb2_grpc.PredictionServiceServicer,), {
        "Predict": _guarded(manager, "predict", _predict), "Classify": _guarded(manager, "classify", _classify),
        "Regress": _guarded(manager, "regress", _regress),
        "GetModelMetadata": _guarded(manager, "metadata", _metadata)})
    model = type("ModelService", (model_service_pb2_grpc.ModelServiceServicer,), {
        "GetModelStatus": _guarded(manager, "status", _model_status)})
    return [(prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server, prediction()),
            (model_service_pb2_grpc.add_ModelServiceServicer_to_server, model())]
