"""The Open Inference Protocol (v2) on the same ports as TF Serving's, over TF Serving's own test
servable (half_plus_two, y = x / 2 + 2, input `x` and output `y` of shape [?, 1]): REST and gRPC."""

import json
import struct
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import rest, running_server

INFER = "/v2/models/default/infer"


def _infer_body(values, datatype="FP32", shape=None, **extra):
    return {
        "inputs": [{"name": "x", "datatype": datatype, "shape": shape or [len(values), 1], "data": values}],
        **extra,
    }


def _post_binary(server, path, header: dict, payload: bytes, header_length=None):
    """A binary-extension request: JSON header, then the raw tensor bytes."""
    text = json.dumps(header).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}{path}",
        data=text + payload,
        method="POST",
        headers={
            "Inference-Header-Content-Length": str(len(text) if header_length is None else header_length)
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- REST -----------------------------------------------------------------------------------------


def test_health_and_server_metadata(half_plus_two):
    assert rest(half_plus_two, "GET", "/v2/health/live") == (200, {"live": True})
    assert rest(half_plus_two, "GET", "/v2/health/ready") == (200, {"ready": True})
    status, metadata = rest(half_plus_two, "GET", "/v2")
    assert (
        status == 200 and metadata["name"] == "kerasdrop" and "binary_tensor_data" in metadata["extensions"]
    )


def test_model_metadata_and_readiness_come_from_the_signature(half_plus_two):
    assert rest(half_plus_two, "GET", "/v2/models/default") == (
        200,
        {
            "name": "default",
            "versions": ["123"],
            "platform": "tensorflow_savedmodel",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        },
    )
    assert rest(half_plus_two, "GET", "/v2/models/default/versions/123")[1]["name"] == "default"
    assert rest(half_plus_two, "GET", "/v2/models/default/ready") == (200, {"name": "default", "ready": True})
    assert rest(half_plus_two, "GET", "/v2/models/default/versions/124/ready") == (
        400,
        {"name": "default", "ready": False},
    )


def test_infer_json_equals_the_tf_serving_protocol_answer(half_plus_two):
    tf_serving = rest(
        half_plus_two, "POST", "/v1/models/default:predict", {"instances": [[2.0], [3.0], [4.0]]}
    )
    status, body = rest(half_plus_two, "POST", INFER, _infer_body([2.0, 3.0, 4.0], id="request-7"))
    assert status == 200
    assert body == {
        "model_name": "default",
        "model_version": "123",
        "id": "request-7",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [3, 1], "data": [3.0, 3.5, 4.0]}],
    }
    assert np.reshape(body["outputs"][0]["data"], (3, 1)).tolist() == tf_serving[1]["predictions"]
    nested = rest(
        half_plus_two,
        "POST",
        "/v2/models/default/versions/123/infer",
        _infer_body([[2.0], [3.0]], outputs=[{"name": "y"}]),
    )
    assert nested[1]["outputs"][0]["data"] == [3.0, 3.5] and "id" not in nested[1]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (_infer_body([2.0], datatype="FP64"), 400, "Input 'x' expects datatype FP32; received FP64"),
        (_infer_body([2.0], datatype="FLOAT"), 400, "Unknown datatype 'FLOAT'; expected one of BOOL, UINT8"),
        (
            _infer_body([2.0, 3.0], shape=[3, 1]),
            400,
            "Input 'x' has shape [3, 1] (3 elements) but carries 2 values",
        ),
        (_infer_body([1.0, 2.0], shape=[1, 2]), 400, "Input 'x' expects shape [?, 1]; received shape [1, 2]"),
        (
            _infer_body([1.0], shape=[1, -1]),
            400,
            "Input 'x': 'shape' must be a list of non-negative integers",
        ),
        (_infer_body(["a"]), 400, "Input 'x' expects FP32 values; received values that cannot be converted"),
        (
            _infer_body([2.0], outputs=[{"name": "z"}]),
            400,
            "Unknown output 'z' requested; the model's outputs are ['y']",
        ),
        (
            {"inputs": [{"name": "q", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]},
            400,
            "Unexpected input 'q'; the model's inputs are ['x']",
        ),
        ({"inputs": []}, 400, "Expected inputs ['x']; missing ['x']"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1]}]}, 400, "Input 'x' has no 'data'"),
        ({"outputs": []}, 400, "The request must be a JSON object with an 'inputs' list"),
        (_infer_body([2.0], id=7), 400, "'id' must be a string; received 7"),
        (
            _infer_body([2.0], outputs=[{"name": "y", "parameters": {"class_count": 2}}]),
            400,
            "Output 'y': 'class_count'",
        ),
        (
            _infer_body([2.0], parameters={"signature_name": "nope"}),
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
    ],
)
def test_bad_infer_requests_get_400_naming_expected_and_received(half_plus_two, body, status, message):
    answer = rest(half_plus_two, "POST", INFER, body)
    assert answer[0] == status and answer[1]["error"].startswith(message), answer


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/v2/models/nope", 404, "Servable not found for request: Latest(nope)"),
        ("POST", "/v2/models/nope/infer", 404, "Servable not found"),
        ("GET", "/v2/models/default/versions/9", 404, "Servable not found for request: Specific(default, 9)"),
        (
            "GET",
            "/v2/models/default/versions/x",
            400,
            "Model version must be a positive 64-bit integer; received 'x'",
        ),
        ("GET", "/v2/models/default/infer", 405, "Method GET is not allowed"),
        ("DELETE", "/v2/health/ready", 405, "Method DELETE is not allowed"),
        ("GET", "/v2/unknown", 404, "Not an Open Inference Protocol path"),
    ],
)
def test_unknown_models_paths_and_methods(half_plus_two, method, path, status, message):
    answer = rest(half_plus_two, method, path, raw=b"{}" if method == "POST" else None)
    assert answer[0] == status and answer[1]["error"].startswith(message), answer


def test_malformed_json_is_a_400(half_plus_two):
    assert rest(half_plus_two, "POST", INFER, raw=b'{"inputs": [')[0] == 400
    assert rest(half_plus_two, "POST", INFER, raw=b"[1, 2]")[1]["error"].startswith(
        "The request must be a JSON"
    )


def test_binary_tensor_extension_in_and_out(half_plus_two):
    values = np.array([[2.0], [6.0]], dtype="<f4")
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [2, 1],
                "parameters": {"binary_data_size": values.nbytes},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    status, headers, body = _post_binary(half_plus_two, INFER, header, values.tobytes())
    assert status == 200, body
    length = int(headers["Inference-Header-Content-Length"])
    document = json.loads(body[:length])
    assert document["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [2, 1], "parameters": {"binary_data_size": 8}}
    ]
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f4"), [3.0, 5.0])
    # Binary input, JSON output (the output's own parameter wins over the request's).
    header["outputs"] = [{"name": "y", "parameters": {"binary_data": False}}]
    status, headers, body = _post_binary(half_plus_two, INFER, header, values.tobytes())
    assert "Inference-Header-Content-Length" not in headers and json.loads(body)["outputs"][0]["data"] == [
        3.0,
        5.0,
    ]


@pytest.mark.parametrize(
    "size, payload, header_length, message",
    [
        (8, b"\0" * 4, None, "Input 'x' declares 8 bytes of binary data but only 4 remain"),
        (4, b"\0" * 8, None, "4 bytes of binary data follow the inputs' 'binary_data_size' total"),
        (4, b"\0" * 4, 10**6, "Inference-Header-Content-Length must be a byte count within the body"),
        (-1, b"", None, "Input 'x': 'binary_data_size' must be a non-negative integer"),
    ],
)
def test_bad_binary_requests_get_400(half_plus_two, size, payload, header_length, message):
    header = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [1, 1], "parameters": {"binary_data_size": size}}
        ]
    }
    status, _, body = _post_binary(half_plus_two, INFER, header, payload, header_length)
    assert status == 400 and json.loads(body)["error"].startswith(message), body


def test_v2_requests_are_counted_in_the_metrics(half_plus_two):
    metrics = half_plus_two.manager.metrics
    before = (
        metrics.request_count("default", "rest:v2_infer"),
        metrics.request_count("default", "rest:v2_infer", "INVALID_ARGUMENT"),
    )
    rest(half_plus_two, "POST", INFER, _infer_body([2.0]))
    rest(half_plus_two, "POST", INFER, _infer_body([2.0], datatype="FP64"))
    assert (
        metrics.request_count("default", "rest:v2_infer"),
        metrics.request_count("default", "rest:v2_infer", "INVALID_ARGUMENT"),
    ) == (before[0] + 1, before[1] + 1)
    assert 'API="rest:v2_infer"' in rest(half_plus_two, "GET", "/monitoring/prometheus/metrics")[1]


def test_admission_control_applies_to_v2(shared_testdata):
    """--max-elements is checked on the declared shape before any array is built."""
    with running_server(
        models={"default": shared_testdata / "saved_model_half_plus_two_cpu"}, max_elements=4
    ) as server:
        status, body = rest(server, "POST", INFER, _infer_body([1.0], shape=[5, 1]))
        assert status == 413 and body["error"].startswith("Input 'x' has 5 elements; the limit is 4")


# --- gRPC -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oip_stub(half_plus_two):
    import grpc

    from kerasdrop.serving.protocols.oip.messages import GRPCInferenceServiceStub

    channel = grpc.insecure_channel(f"127.0.0.1:{half_plus_two.grpc_port}")
    yield GRPCInferenceServiceStub(channel)
    channel.close()


def _pb2():
    from kerasdrop.serving.protocols.oip.messages import messages

    return messages


def test_grpc_health_and_metadata(oip_stub):
    pb2 = _pb2()
    assert oip_stub.ServerLive(pb2.ServerLiveRequest()).live
    assert oip_stub.ServerReady(pb2.ServerReadyRequest()).ready
    assert oip_stub.ServerMetadata(pb2.ServerMetadataRequest()).name == "kerasdrop"
    assert oip_stub.ModelReady(pb2.ModelReadyRequest(name="default")).ready
    assert not oip_stub.ModelReady(pb2.ModelReadyRequest(name="default", version="124")).ready
    metadata = oip_stub.ModelMetadata(pb2.ModelMetadataRequest(name="default"))
    assert (metadata.name, list(metadata.versions), metadata.platform) == (
        "default",
        ["123"],
        "tensorflow_savedmodel",
    )
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("x", "FP32", [-1, 1])]


def test_grpc_infer_with_typed_and_raw_contents(oip_stub):
    pb2 = _pb2()
    request = pb2.ModelInferRequest(model_name="default", id="42")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 1]).contents.fp32_contents.extend([2.0, 6.0])
    response = oip_stub.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("default", "123", "42")
    assert list(response.outputs[0].contents.fp32_contents) == [3.0, 5.0] and not response.raw_output_contents
    raw = pb2.ModelInferRequest(model_name="default", model_version="123")
    raw.inputs.add(name="x", datatype="FP32", shape=[2, 1])
    raw.raw_input_contents.append(np.array([2.0, 6.0], "<f4").tobytes())
    response = oip_stub.ModelInfer(raw)
    assert list(response.outputs[0].shape) == [2, 1]
    np.testing.assert_array_equal(np.frombuffer(response.raw_output_contents[0], "<f4"), [3.0, 5.0])


def _grpc_error(stub, request):
    import grpc

    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request)
    return raised.value.code().name, raised.value.details()


def test_grpc_errors_are_invalid_argument_or_not_found(oip_stub):
    pb2 = _pb2()
    code, details = _grpc_error(oip_stub, pb2.ModelInferRequest(model_name="nope"))
    assert code == "NOT_FOUND" and details.startswith(
        "Servable not found for request: Latest(nope) (served: "
    )
    assert (
        _grpc_error(oip_stub, pb2.ModelInferRequest(model_name="default", model_version="x"))[0]
        == "INVALID_ARGUMENT"
    )
    short = pb2.ModelInferRequest(model_name="default")
    short.inputs.add(name="x", datatype="FP32", shape=[2, 1]).contents.fp32_contents.append(1.0)
    assert _grpc_error(oip_stub, short) == (
        "INVALID_ARGUMENT",
        "Input 'x' has shape [2, 1] (2 elements) but its contents.fp32_contents carries 1 values",
    )
    wrong_raw = pb2.ModelInferRequest(model_name="default")
    wrong_raw.inputs.add(name="x", datatype="FP32", shape=[2, 1])
    wrong_raw.raw_input_contents.append(b"\0" * 4)
    assert _grpc_error(oip_stub, wrong_raw) == (
        "INVALID_ARGUMENT",
        "Input 'x': shape [2] of FP32 needs 8 bytes; received 4",
    )


def test_grpc_methods_of_triton_beyond_the_protocol_are_unimplemented(oip_stub):
    import grpc

    pb2 = _pb2()
    with pytest.raises(grpc.RpcError) as raised:
        oip_stub.RepositoryIndex(pb2.RepositoryIndexRequest())
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as raised:
        oip_stub.ModelStatistics(pb2.ModelStatisticsRequest(name="default"))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert oip_stub.ServerLive(pb2.ServerLiveRequest()).live  # the server goes on answering


def test_bytes_tensors_round_trip_through_the_length_prefixed_encoding():
    from kerasdrop.serving.protocols.oip import datatypes

    values = np.array([b"", b"ab", "\u00e9".encode()], dtype=object)
    encoded = datatypes.to_buffer(values)
    assert (
        encoded
        == struct.pack("<I", 0) + struct.pack("<I", 2) + b"ab" + struct.pack("<I", 2) + "\u00e9".encode()
    )
    assert datatypes.from_buffer("s", "BYTES", encoded, [3]).tolist() == values.tolist()
    with pytest.raises(Exception, match="its shape holds 4 elements but the BYTES data carries 3"):
        datatypes.from_buffer("s", "BYTES", encoded, [4])


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=16,
)
_inputs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "y", ""]) | _values,
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES"]) | _values,
        "shape": st.lists(st.integers(-2, 4), max_size=3) | _values,
        "data": _values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-1, 8) | _values})
        | _values,
    },
)
_bodies = st.one_of(
    _values,
    st.fixed_dictionaries(
        {},
        optional={
            "inputs": st.lists(_inputs, max_size=2) | _values,
            "outputs": _values,
            "id": _values,
            "parameters": _values,
        },
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_any_v2_infer_body_gets_a_json_answer_and_never_a_5xx(half_plus_two, body):
    status, answer = rest(half_plus_two, "POST", INFER, raw=json.dumps(body).encode())
    assert status < 500, answer
    assert isinstance(answer, dict) and ("error" in answer) == (status >= 400)
