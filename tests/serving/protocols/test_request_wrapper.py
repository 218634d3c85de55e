"""The one request wrapper (protocols/recorded.py): the same failure gets the same status and the same
metric from TF Serving's and the Open Inference Protocol's REST and gRPC adapters, over TF Serving's
test servable half_plus_two (model `default`, version 123, input `x`, output `y`)."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from kerasdrop.serving.models.metrics import UNKNOWN_MODEL
from tests.serving.conftest import grpc_stubs

_TRANSPORTS = ("tf-serving-rest", "tf-serving-grpc", "oip-rest", "oip-grpc")
_API = {
    "tf-serving-rest": "rest:predict",
    "tf-serving-grpc": "grpc:predict",
    "oip-rest": "rest:v2_infer",
    "oip-grpc": "grpc:v2_infer",
}


def _post(server, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}{path}", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _grpc(call, request) -> str:
    import grpc

    try:
        call(request, timeout=30)
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def _send(server, transport: str, model: str, input_name: str) -> object:
    """One predict / infer of `[[2.0]]` into `input_name` of `model`: the HTTP status or the gRPC code."""
    if transport == "tf-serving-rest":
        return _post(server, f"/v1/models/{model}:predict", {"inputs": {input_name: [[2.0]]}})
    if transport == "oip-rest":
        return _post(
            server,
            f"/v2/models/{model}/infer",
            {"inputs": [{"name": input_name, "datatype": "FP32", "shape": [1, 1], "data": [2.0]}]},
        )
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        if transport == "tf-serving-grpc":
            import tensorflow as tf
            from tensorflow_serving.apis import predict_pb2

            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(np.array([[2.0]], dtype="float32")))
            return _grpc(grpc_stubs(server)[0].Predict, request)
        from kerasdrop.serving.protocols.oip.messages import GRPCInferenceServiceStub, messages

        request = messages.ModelInferRequest(model_name=model)
        request.inputs.add(name=input_name, datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(2.0)
        return _grpc(GRPCInferenceServiceStub(channel).ModelInfer, request)
    finally:
        channel.close()


def _recorded(server, send) -> list[tuple]:
    """The request counts (model, version, API, status) that `send()` added to the server's metrics."""

    def counts():
        return {tuple(key): count for *key, count in server.manager.metrics.snapshot()["requests"]}

    before = counts()
    send()
    return sorted(key for key, count in counts().items() if count != before.get(key, 0))


@pytest.mark.parametrize("transport", _TRANSPORTS)
@pytest.mark.parametrize(
    "failure, status, expected",
    [
        ("unknown model", {"rest": 404, "grpc": "NOT_FOUND"}, (UNKNOWN_MODEL, "", "NOT_FOUND")),
        ("unknown input", {"rest": 400, "grpc": "INVALID_ARGUMENT"}, ("default", "123", "INVALID_ARGUMENT")),
        ("server bug", {"rest": 500, "grpc": "INTERNAL"}, ("default", "123", "INTERNAL")),
        ("none", {"rest": 200, "grpc": "OK"}, ("default", "123", "OK")),
    ],
)
def test_each_protocol_records_the_same_metric_for_the_same_failure(
    half_plus_two, monkeypatch, transport, failure, status, expected
):
    model, input_name = (
        ("nope" if failure == "unknown model" else "default"),
        ("nope" if failure == "unknown input" else "x"),
    )
    if failure == "server bug":
        backend = half_plus_two.manager.resolve("default").backend

        def broken(*args):
            raise RuntimeError("a bug in the backend")

        monkeypatch.setattr(backend, "run", broken)
    answers = []
    recorded = _recorded(
        half_plus_two, lambda: answers.append(_send(half_plus_two, transport, model, input_name))
    )
    assert answers == [status["rest" if transport.endswith("rest") else "grpc"]]
    model_label, version, code = expected
    assert recorded == [(model_label, version, _API[transport], code)]


def test_a_server_bug_is_internal_with_the_exception_named_over_rest_and_grpc(half_plus_two, monkeypatch):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2

    monkeypatch.setattr(
        "kerasdrop.serving.protocols.tfserving.core.signature_def_map",
        lambda backend: (_ for _ in ()).throw(KeyError("lost")),
    )
    request = urllib.request.Request(f"http://127.0.0.1:{half_plus_two.rest_port}/v1/models/default/metadata")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 500
    assert json.loads(raised.value.read()) == {"error": "Internal error: KeyError: 'lost'"}
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "default"
    with pytest.raises(grpc.RpcError) as raised:
        grpc_stubs(half_plus_two)[0].GetModelMetadata(metadata, timeout=30)
    assert (raised.value.code(), raised.value.details()) == (
        grpc.StatusCode.INTERNAL,
        "Internal error: KeyError: 'lost'",
    )


@pytest.mark.parametrize("path", ["/v1/models/default/versions/%C2%B2", "/v2/models/default/versions/%C2%B2"])
def test_a_unicode_digit_version_is_a_400_in_both_rest_protocols(half_plus_two, path):
    """'²'.isdigit() is true but int('²') raises: the one version parser takes ASCII digits only."""
    request = urllib.request.Request(f"http://127.0.0.1:{half_plus_two.rest_port}{path}")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 400
    message = json.loads(raised.value.read())["error"]
    assert message.startswith("Model version must be a positive 64-bit integer")


def test_no_protocol_adapter_times_or_records_a_request_itself():
    """Timing and metrics live once, in protocols/recorded.py."""
    import pathlib

    protocols = pathlib.Path(__file__).resolve().parents[2] / "kerasdrop" / "serving" / "protocols"
    spelled = ("perf_counter", "record_request", "grpc_status_code")
    found = [
        str(path.relative_to(protocols))
        for path in sorted(protocols.rglob("*.py"))
        if path.name != "recorded.py" and any(text in path.read_text() for text in spelled)
    ]
    assert found == []


def test_every_router_has_the_rest_router_shape():
    from kerasdrop.serving.protocols.oip.rest import OipRest
    from kerasdrop.serving.protocols.registry import RestRouter
    from kerasdrop.serving.protocols.tfserving.rest import TfServingRest

    members = {name for name in vars(RestRouter) if not name.startswith("_")}
    assert members == {"claims", "cheap", "answer", "close"}
    for router in (TfServingRest, OipRest):
        assert members <= set(vars(router)), router
