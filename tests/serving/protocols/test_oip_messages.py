"""The Open Inference Protocol's gRPC messages come from tritonclient (kerasdrop/serving/protocols/oip/messages.py):
Triton's `inference` package must hold the protocol's service and messages field by field, and nothing
generated from a proto is kept in this repository."""

import pathlib

from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parents[3]

# The protocol's gRPC definition (open_inference_grpc.proto in github.com/kserve/open-inference-protocol,
# specification/protocol), transcribed: service methods, then each message's fields as (number, type).
OIP_METHODS = {
    method: (f"inference.{method}Request", f"inference.{method}Response")
    for method in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
}
PARAMETERS = "map<string, InferParameter>"
TENSOR = {
    "name": (1, "string"),
    "datatype": (2, "string"),
    "shape": (3, "repeated int64"),
    "parameters": (4, PARAMETERS),
    "contents": (5, "InferTensorContents"),
}
OIP_MESSAGES = {
    "ServerLiveRequest": {},
    "ServerLiveResponse": {"live": (1, "bool")},
    "ServerReadyRequest": {},
    "ServerReadyResponse": {"ready": (1, "bool")},
    "ModelReadyRequest": {"name": (1, "string"), "version": (2, "string")},
    "ModelReadyResponse": {"ready": (1, "bool")},
    "ServerMetadataRequest": {},
    "ServerMetadataResponse": {
        "name": (1, "string"),
        "version": (2, "string"),
        "extensions": (3, "repeated string"),
    },
    "ModelMetadataRequest": {"name": (1, "string"), "version": (2, "string")},
    # The spec's newer optional `map<string, string> properties = 6` is not in Triton's message; the
    # server never sends it (grpc_service._model_metadata), so its absence changes nothing on the wire.
    "ModelMetadataResponse": {
        "name": (1, "string"),
        "versions": (2, "repeated string"),
        "platform": (3, "string"),
        "inputs": (4, "repeated ModelMetadataResponse.TensorMetadata"),
        "outputs": (5, "repeated ModelMetadataResponse.TensorMetadata"),
    },
    "ModelMetadataResponse.TensorMetadata": {
        "name": (1, "string"),
        "datatype": (2, "string"),
        "shape": (3, "repeated int64"),
    },
    "ModelInferRequest": {
        "model_name": (1, "string"),
        "model_version": (2, "string"),
        "id": (3, "string"),
        "parameters": (4, PARAMETERS),
        "inputs": (5, "repeated ModelInferRequest.InferInputTensor"),
        "outputs": (6, "repeated ModelInferRequest.InferRequestedOutputTensor"),
        "raw_input_contents": (7, "repeated bytes"),
    },
    "ModelInferRequest.InferInputTensor": TENSOR,
    "ModelInferRequest.InferRequestedOutputTensor": {"name": (1, "string"), "parameters": (2, PARAMETERS)},
    "ModelInferResponse": {
        "model_name": (1, "string"),
        "model_version": (2, "string"),
        "id": (3, "string"),
        "parameters": (4, PARAMETERS),
        "outputs": (5, "repeated ModelInferResponse.InferOutputTensor"),
        "raw_output_contents": (6, "repeated bytes"),
    },
    "ModelInferResponse.InferOutputTensor": TENSOR,
    "InferParameter": {
        "bool_param": (1, "oneof parameter_choice bool"),
        "int64_param": (2, "oneof parameter_choice int64"),
        "string_param": (3, "oneof parameter_choice string"),
        "double_param": (4, "oneof parameter_choice double"),
        "uint64_param": (5, "oneof parameter_choice uint64"),
    },
    "InferTensorContents": {
        "bool_contents": (1, "repeated bool"),
        "int_contents": (2, "repeated int32"),
        "int64_contents": (3, "repeated int64"),
        "uint_contents": (4, "repeated uint32"),
        "uint64_contents": (5, "repeated uint64"),
        "fp32_contents": (6, "repeated float"),
        "fp64_contents": (7, "repeated double"),
        "bytes_contents": (8, "repeated bytes"),
    },
}


def _type(field) -> str:
    """A field's type as the .proto writes it: `repeated int64`, `map<string, InferParameter>`, `oneof ...`."""
    if field.message_type is not None:
        kind = field.message_type.full_name.removeprefix("inference.")
        if field.message_type.GetOptions().map_entry:
            key, value = (_type(entry) for entry in field.message_type.fields)
            return f"map<{key}, {value}>"
    else:
        kind = descriptor_pb2.FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower()
    if field.label == field.LABEL_REPEATED:
        return f"repeated {kind}"
    oneof = field.containing_oneof
    return f"oneof {oneof.name} {kind}" if oneof is not None and not oneof.name.startswith("_") else kind


def _message(file_descriptor, dotted: str):
    outer, _, nested = dotted.partition(".")
    message = file_descriptor.message_types_by_name[outer]
    return message.nested_types_by_name[nested] if nested else message


def test_the_messages_are_tritonclients_generated_inference_package():
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from kerasdrop.serving.protocols.oip import messages

    assert messages.messages is service_pb2 and service_pb2.DESCRIPTOR.package == "inference"
    assert messages.GRPCInferenceServiceServicer is service_pb2_grpc.GRPCInferenceServiceServicer


def test_the_service_has_the_six_protocol_methods_with_their_request_and_response_types():
    from kerasdrop.serving.protocols.oip.messages import messages

    service = messages.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    found = {
        method.name: (method.input_type.full_name, method.output_type.full_name)
        for method in service.methods
        if method.name in OIP_METHODS
    }
    assert found == OIP_METHODS
    assert not any(
        method.client_streaming or method.server_streaming
        for method in service.methods
        if method.name in OIP_METHODS
    )


def test_every_protocol_message_has_exactly_the_protocols_fields_numbers_and_types():
    from kerasdrop.serving.protocols.oip.messages import messages

    for name, expected in OIP_MESSAGES.items():
        message = _message(messages.DESCRIPTOR, name)
        found = {field.name: (field.number, _type(field)) for field in message.fields}
        assert found == expected, name


def test_the_servicer_implements_the_six_protocol_methods_and_leaves_the_rest_to_the_base():
    from kerasdrop.serving.protocols.oip.grpc_service import make_servicer
    from kerasdrop.serving.protocols.oip.messages import GRPCInferenceServiceServicer

    servicer = type(make_servicer(manager=None))
    overridden = {name for name in vars(servicer) if not name.startswith("_")}
    assert overridden == set(OIP_METHODS)
    assert issubclass(servicer, GRPCInferenceServiceServicer)


def test_nothing_generated_from_a_proto_is_kept_in_the_repository():
    package = ROOT / "kerasdrop"
    kept = sorted(
        str(path.relative_to(ROOT))
        for pattern in ("*.proto", "*_pb2.py", "*_pb2_grpc.py")
        for path in package.rglob(pattern)
    )
    assert kept == []
    makefile = (ROOT / "Makefile").read_text()
    assert "protoc" not in makefile and "grpc_tools" not in makefile
