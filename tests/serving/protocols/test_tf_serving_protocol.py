"""kerasdrop serve gives the answers TF Serving's own test suite expects from the real server."""

import json

import pytest

from tests.serving.conftest import grpc_stubs, rest, running_server


def test_rest_predict_row_format(half_plus_two):
    assert rest(half_plus_two, "POST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200,
        {"predictions": [3.0, 3.5, 4.0]},
    )


def test_rest_predict_columnar_format(half_plus_two):
    assert rest(half_plus_two, "POST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}) == (
        200,
        {"outputs": [3.0, 3.5, 4.0]},
    )


def test_rest_model_status(half_plus_two):
    assert rest(half_plus_two, "GET", "/v1/models/default") == (
        200,
        {
            "model_version_status": [
                {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    assert rest(half_plus_two, "GET", "/v1/models/default/versions/123")[0] == 200


def test_rest_metadata_matches_tf_serving_exactly(half_plus_two, shared_testdata):
    status, metadata = rest(half_plus_two, "GET", "/v1/models/default/metadata")
    expected = json.loads((shared_testdata / "half_plus_two_model_metadata.json").read_text())
    assert status == 200
    assert json.dumps(metadata, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_rest_classify_and_regress(half_plus_two):
    assert rest(
        half_plus_two,
        "POST",
        "/v1/models/default:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
    ) == (200, {"results": [[["", 3.0]]]})
    assert rest(
        half_plus_two,
        "POST",
        "/v1/models/default:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]},
    ) == (200, {"results": [3.0]})


def test_prometheus_metrics(half_plus_two):
    rest(half_plus_two, "POST", "/v1/models/default:predict", {"instances": [1.0]})
    status, text = rest(half_plus_two, "GET", "/monitoring/prometheus/metrics")
    assert status == 200 and "# TYPE" in text
    # The version that answered, not the one asked for (the request asked for the latest).
    assert (
        ':tensorflow:serving:request_count{model_name="default",version="123",API="rest:predict",status="OK"}'
        in text
    )
    assert ":tensorflow:serving:request_latency_bucket" in text


def _example(value):
    import tensorflow as tf

    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(value)
    return example


def _examples_request(request_class, signature, value):
    """A Classify/Regress request for model `default` with one tf.Example `x=value`."""
    request = request_class()
    request.model_spec.name = "default"
    request.model_spec.signature_name = signature
    request.input.example_list.examples.append(_example(value))
    return request


def test_grpc_classify(half_plus_two):
    from tensorflow_serving.apis import classification_pb2

    stub, _ = grpc_stubs(half_plus_two)
    response = stub.Classify(
        _examples_request(classification_pb2.ClassificationRequest, "classify_x_to_y", 2.0), timeout=30
    )
    assert len(response.result.classifications) == 1
    assert len(response.result.classifications[0].classes) == 1
    assert response.result.classifications[0].classes[0].score == pytest.approx(3.0)
    assert (
        response.model_spec.name,
        response.model_spec.signature_name,
        response.model_spec.version.value,
    ) == ("default", "classify_x_to_y", 123)


def test_grpc_regress(half_plus_two):
    from tensorflow_serving.apis import regression_pb2

    stub, _ = grpc_stubs(half_plus_two)
    response = stub.Regress(
        _examples_request(regression_pb2.RegressionRequest, "regress_x_to_y", 2.0), timeout=30
    )
    assert len(response.result.regressions) == 1
    assert response.result.regressions[0].value == pytest.approx(3.0)


def test_grpc_metadata_has_exactly_signature_def(half_plus_two):
    from tensorflow_serving.apis import get_model_metadata_pb2

    stub, _ = grpc_stubs(half_plus_two)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = stub.GetModelMetadata(request, timeout=30)
    assert list(response.metadata) == ["signature_def"]
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].method_name == "tensorflow/serving/predict"
    assert response.model_spec.version.value == 123


def test_grpc_predict_and_model_status(half_plus_two):
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

    stub, model_stub = grpc_stubs(half_plus_two)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[2.0], [4.0]], dtype="float32")))
    response = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[3.0], [4.0]])
    assert response.model_spec.signature_name == "serving_default"
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "default"
    (status,) = model_stub.GetModelStatus(status_request, timeout=30).model_version_status
    assert status.version == 123 and status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_tf2_servable(shared_testdata):
    with running_server(models={"half": shared_testdata / "saved_model_half_plus_two_tf2_cpu"}) as server:
        assert rest(server, "POST", "/v1/models/half:predict", {"instances": [4.0]}) == (
            200,
            {"predictions": [4.0]},
        )
        # TF2 writes every signature with method tensorflow/serving/predict, so :regress is refused clearly.
        status, body = rest(
            server,
            "POST",
            "/v1/models/half:regress",
            {"signature_name": "regress_x_to_y", "examples": [{"x": 4.0}]},
        )
        assert status == 400 and "tensorflow/serving/regress" in body["error"]


@pytest.mark.parametrize(
    "policy, versions", [("latest", ["124"]), ("all", ["123", "124"]), ("specific:123", ["123"])]
)
def test_version_policies_on_zero_padded_versions(shared_testdata, policy, versions):
    with running_server(
        models={"two": shared_testdata / "saved_model_half_plus_two_2_versions"}, version_policy=policy
    ) as server:
        status, body = rest(server, "GET", "/v1/models/two")
        assert [entry["version"] for entry in body["model_version_status"]] == versions
        assert (
            rest(server, "GET", f"/v1/models/two/versions/{versions[0]}/metadata")[1]["model_spec"]["version"]
            == versions[0]
        )


def test_grpc_metrics_name_the_version_that_answered(half_plus_two):
    from tensorflow_serving.apis import regression_pb2

    stub, _ = grpc_stubs(half_plus_two)
    stub.Regress(_examples_request(regression_pb2.RegressionRequest, "regress_x_to_y", 1.0), timeout=30)
    text = rest(half_plus_two, "GET", "/monitoring/prometheus/metrics")[1]
    assert (
        ':tensorflow:serving:request_count{model_name="default",version="123",API="grpc:regress",status="OK"}'
        in text
    )
