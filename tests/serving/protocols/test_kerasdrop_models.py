"""Serving exported kerasdrop models: both backends, both protocols, lifecycle, batching, bad input."""

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerasdrop.cli.client import ServingClient
from tests.serving.conftest import grpc_stubs, rest, running_server

IMAGES = np.random.default_rng(0).uniform(0, 16, (3, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module", params=["tf", "onnx"])
def served(request, exported_repo):
    repo, model = exported_repo
    with running_server(repo=str(repo), backend=request.param) as server:
        yield server, model, request.param


def test_rest_and_grpc_agree_with_keras_on_both_backends(served):
    server, model, _ = served
    expected = np.asarray(model(IMAGES, training=False))
    for url in (f"http://127.0.0.1:{server.rest_port}", f"grpc://127.0.0.1:{server.grpc_port}"):
        outputs = ServingClient(url).predict("lenet5", IMAGES)
        np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5, rtol=1e-4)
        np.testing.assert_array_equal(outputs["class_ids"], expected.argmax(axis=1))


def test_row_format_returns_one_object_per_image(served):
    server, model, _ = served
    status, body = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": IMAGES.tolist()})
    assert status == 200 and len(body["predictions"]) == 3
    assert set(body["predictions"][0]) == {"probabilities", "class_ids"}
    assert body["predictions"][1]["class_ids"] == int(np.argmax(model(IMAGES[1:2], training=False)))


def test_repeated_requests_give_identical_answers(served):
    server, _, _ = served
    answers = {
        json.dumps(rest(server, "POST", "/v1/models/lenet5:predict", {"inputs": IMAGES.tolist()})[1])
        for _ in range(5)
    }
    assert len(answers) == 1


def test_mc_dropout_only_on_the_tf_backend(served):
    server, _, backend = served
    status, body = rest(
        server,
        "POST",
        "/v1/models/lenet5:predict",
        {"signature_name": "mc_dropout", "inputs": IMAGES.tolist()},
    )
    if backend == "tf":
        assert status == 200 and set(body["outputs"]) == {"mean", "stddev"}
        again = rest(
            server,
            "POST",
            "/v1/models/lenet5:predict",
            {"signature_name": "mc_dropout", "inputs": IMAGES.tolist()},
        )[1]
        assert again != body, "mc_dropout is stochastic"
    else:
        assert status == 400 and "mc_dropout" in body["error"] and "--backend tf" in body["error"]


BAD_REQUESTS = [
    ("/v1/models/lenet5:predict", b"{not json", 400, "JSON Parse error"),
    (
        "/v1/models/lenet5:predict",
        json.dumps({"instances": [[0]], "inputs": [[0]]}).encode(),
        400,
        "exactly one of",
    ),
    (
        "/v1/models/lenet5:predict",
        json.dumps({"inputs": np.zeros((2, 7, 8, 1)).tolist()}).encode(),
        400,
        "expects shape [?, 8, 8, 1]; received shape [2, 7, 8, 1]",
    ),
    (
        "/v1/models/lenet5:predict",
        json.dumps({"inputs": [[["a"] * 1] * 8] * 8}).encode(),
        400,
        "expects a rectangular array of float32 values",
    ),
    (
        "/v1/models/lenet5:predict",
        json.dumps({"inputs": {"pixels": [[0.0]]}}).encode(),
        400,
        "missing ['images'], unexpected ['pixels']",
    ),
    ("/v1/models/lenet5:predict", b'{"inputs": [[[[NaN]]]]}', 400, "NaN is not allowed"),
    ("/v1/models/lenet5:predict", json.dumps({}).encode(), 400, "Missing 'instances' or 'inputs'"),
    ("/v1/models/nope:predict", json.dumps({"inputs": [1.0]}).encode(), 404, "Servable not found"),
    (
        "/v1/models/lenet5/versions/99:predict",
        json.dumps({"inputs": [1.0]}).encode(),
        404,
        "Specific(lenet5, 99)",
    ),
    ("/v1/models/lenet5/labels/stable:predict", json.dumps({"inputs": [1.0]}).encode(), 400, "version label"),
    (
        "/v1/models/lenet5:classify",
        json.dumps({"examples": [{"x": 1.0}]}).encode(),
        400,
        "tensorflow/serving/classify",
    ),
    (
        "/v1/models/lenet5:regress",
        json.dumps({"examples": [{"x": 1.0}]}).encode(),
        400,
        "tensorflow/serving/regress",
    ),
    # TF Serving's REST handler: INVALID_ARGUMENT (400), its exact words.
    (
        "/v1/models/lenet5:predict",
        json.dumps({"signature_name": "nope", "inputs": [1.0]}).encode(),
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
]


@pytest.mark.parametrize("path, body, status, message", BAD_REQUESTS)
def test_bad_rest_requests_get_a_4xx_that_says_what_was_expected(served, path, body, status, message):
    server, _, _ = served
    got_status, got = rest(server, "POST", path, raw=body)
    assert got_status == status, got
    assert message in got["error"]
    assert rest(server, "GET", "/v1/models/lenet5")[0] == 200, "the server keeps serving"


def test_oversized_body_is_413(exported_repo):
    repo, _ = exported_repo
    with running_server(repo=str(repo), max_body_bytes=1000) as server:
        status, body = rest(server, "POST", "/v1/models/lenet5:predict", raw=b"[" + b"0," * 1000 + b"0]")
        assert status == 413 and "exceeds the limit of 1000 bytes" in body["error"]


def test_bad_content_length_is_400_not_a_server_error(exported_repo):
    import http.client

    repo, _ = exported_repo
    with running_server(repo=str(repo)) as server:
        for value in ("abc", "-5"):
            connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
            connection.putrequest("POST", "/v1/models/lenet5:predict")
            connection.putheader("Content-Length", value)
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == 400
            assert "non-negative integer Content-Length" in json.loads(response.read())["error"]
            connection.close()
        assert rest(server, "GET", "/v1/models/lenet5")[0] == 200


def test_bad_grpc_requests_get_the_matching_status(served):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    server, _, _ = served
    stub, _ = grpc_stubs(server)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "missing"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(IMAGES))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "lenet5"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3, 3, 1), dtype="float32")))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expects shape [?, 8, 8, 1]" in raised.value.details()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["instances", "inputs", "signature_name", "examples"]), json_values, max_size=3
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, verb=st.sampled_from(["predict", "classify", "regress"]))
def test_any_json_body_gets_a_json_answer_and_never_a_5xx(exported_repo, body, verb):
    server = _property_server(exported_repo)
    status, answer = rest(server, "POST", f"/v1/models/lenet5:{verb}", raw=json.dumps(body).encode())
    assert status < 500, answer
    assert isinstance(answer, dict) and ("error" in answer) == (status >= 400)


_servers = {}


def _property_server(exported_repo):
    # One server for all hypothesis examples (fixtures are not re-run per example).
    if "server" not in _servers:
        repo, _ = exported_repo
        context = running_server(repo=str(repo))
        _servers["server"] = context.__enter__()
        _servers["context"] = context
    return _servers["server"]


def teardown_module():
    if "context" in _servers:
        _servers["context"].__exit__(None, None, None)


def test_version_labels_from_models_config(exported_repo, tmp_path):
    repo, _ = exported_repo
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "lenet5" base_path: "/models/lenet5" '
        'model_platform: "tensorflow" version_labels { key: "stable" value: 1 } } }'
    )
    with running_server(repo=str(repo), models_config=str(config)) as server:
        status, body = rest(server, "GET", "/v1/models/lenet5/labels/stable")
        assert status == 200 and body["model_version_status"][0]["version"] == "1"
        assert (
            rest(server, "POST", "/v1/models/lenet5/labels/stable:predict", {"inputs": IMAGES.tolist()})[0]
            == 200
        )


def test_batching_merges_concurrent_requests(exported_repo):
    repo, model = exported_repo
    with running_server(
        repo=str(repo),
        enable_batching=True,
        max_batch_size=16,
        batch_timeout_micros=20000,
        cheap_model_micros=0,
    ) as server:  # batch it although a lone row runs in microseconds
        client = ServingClient(f"grpc://127.0.0.1:{server.grpc_port}")
        results, errors = [None] * 12, []

        def call(index):
            try:
                results[index] = client.predict("lenet5", IMAGES[index % 3 : index % 3 + 1])["probabilities"]
            except Exception as error:  # collected for the assertion below
                errors.append(error)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors
        expected = np.asarray(model(IMAGES, training=False))
        for index, result in enumerate(results):
            np.testing.assert_allclose(result[0], expected[index % 3], atol=1e-5)
        metrics = rest(server, "GET", "/monitoring/prometheus/metrics")[1]
        count = [
            line
            for line in metrics.splitlines()
            if line.startswith(":tensorflow:serving:batching_session:batch_size_count")
        ]
        batches = int(count[0].rsplit(" ", 1)[1])
        assert batches < 12, f"12 concurrent requests ran in {batches} batches: none were merged"


@pytest.mark.slow
def test_hot_swap_under_load_fails_no_request(exported_repo, tmp_path):
    import shutil

    from kerasdrop.exporting import export

    source, model = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    with running_server(repo=str(repo), poll_seconds=0.2) as server:
        client = ServingClient(f"http://127.0.0.1:{server.rest_port}")
        failures, answers, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    client.predict("lenet5", IMAGES[:1])
                    answers.append(1)
                except Exception as error:  # every failure is reported
                    failures.append(error)

        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            export(model, name="lenet5", repo=repo, models_config=None)  # version 2 appears
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                versions = [e["version"] for e in client.status("lenet5")["model_version_status"]]
                if versions == ["2"]:
                    break
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
        assert versions == ["2"], "the new version was loaded and the old one unloaded"
        assert not failures, failures[:3]
        assert len(answers) > 20
