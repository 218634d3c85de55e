"""TF Serving's gRPC API with the official tensorflow-serving-api protos and service stubs.

PredictionService: Predict, Classify, Regress, GetModelMetadata; ModelService: GetModelStatus.
Any TF Serving client (`prediction_service_pb2_grpc.PredictionServiceStub`) works against it.
"""

from __future__ import annotations

import time
from concurrent import futures

from kerasdrop.serving import examples
from kerasdrop.serving.errors import ServingError, invalid

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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


def _examples(request_input):
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return list(request_input.example_list.examples)
    if kind == "example_list_with_context":
        merged = []
        for example in request_input.example_list_with_context.examples:
            combined = type(example)()
            combined.CopyFrom(request_input.example_list_with_context.context)
            combined.MergeFrom(example)
            merged.append(combined)
        return merged
    raise invalid("Input must hold example_list or example_list_with_context")


def make_servicers(manager):
    import tensorflow as tf
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                         model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                         regression_pb2)

    def guarded(api):
        def wrap(function):
            def method(self, request, context):
                started = time.perf_counter()
                name = getattr(getattr(request, "model_spec", None), "name", "")
                try:
                    response = function(self, request, context)
                    spec = getattr(response, "model_spec", None)
                    version = spec.version.value if spec is not None and spec.HasField("version") else ""
                    manager.metrics.record_request(name, version, f"grpc:{api}", "OK", time.perf_counter() - started)
                    return response
                except ServingError as error:
                    manager.metrics.record_request(name, "", f"grpc:{api}", error.code, time.perf_counter() - started)
                    context.abort(_status_code(error.code), error.message)
            return method
        return wrap

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        @guarded("predict")
        def Predict(self, request, context):  # noqa: N802 - the proto's names
            loaded = _spec(manager, request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            try:
                inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise invalid(f"Cannot read input tensors: {error}") from None
            outputs = manager.run(loaded, signature, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = [key for key in wanted if key not in outputs]
            if unknown:
                raise invalid(f"output tensor alias not found in signature: {unknown[0]}")
            response = predict_pb2.PredictResponse()
            _echo(response.model_spec, loaded, signature)
            for key in wanted:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response

        def _run_examples(self, request, method: str):
            loaded = _spec(manager, request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            signature_def = loaded.backend.signature_defs.get(signature)
            if signature_def is None:
                raise ServingError("NOT_FOUND", f"Serving signature name: \"{signature}\" not found in signature def")
            examples.check_method(signature_def, signature, method)
            (input_name,) = list(signature_def.inputs)
            serialized = examples.serialized_examples(_examples(request.input))
            return loaded, signature, manager.run(loaded, signature, {input_name: serialized})

        @guarded("classify")
        def Classify(self, request, context):  # noqa: N802
            loaded, signature, outputs = self._run_examples(request, "tensorflow/serving/classify")
            response = classification_pb2.ClassificationResponse()
            _echo(response.model_spec, loaded, signature)
            for row in examples.classification_results(outputs):
                classifications = response.result.classifications.add()
                for label, score in row:
                    classifications.classes.add(label=label, score=score)
            return response

        @guarded("regress")
        def Regress(self, request, context):  # noqa: N802
            loaded, signature, outputs = self._run_examples(request, "tensorflow/serving/regress")
            response = regression_pb2.RegressionResponse()
            _echo(response.model_spec, loaded, signature)
            for value in examples.regression_results(outputs):
                response.result.regressions.add(value=value)
            return response

        @guarded("metadata")
        def GetModelMetadata(self, request, context):  # noqa: N802
            loaded = _spec(manager, request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise invalid(f"Metadata field(s) {fields} not supported; expected exactly ['signature_def']")
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, signature in loaded.backend.signature_defs.items():
                signature_map.signature_def[name].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _echo(response.model_spec, loaded, "")
            response.model_spec.ClearField("signature_name")
            response.metadata["signature_def"].Pack(signature_map)
            return response

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        @guarded("status")
        def GetModelStatus(self, request, context):  # noqa: N802
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in manager.status(spec.name, version, label):
                status = response.model_version_status.add()
                status.version = int(entry["version"])
                status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            return response

    return PredictionService(), ModelService()


def make_grpc_server(manager, address: str, workers: int = 16):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    prediction, model = make_servicers(manager)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    return server, port
