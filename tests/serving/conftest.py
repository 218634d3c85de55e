"""Servers started in-process on free loopback ports, stopped after the test module."""

import contextlib
import json
import urllib.error
import urllib.request

import pytest

from kerasdrop.serving.server import ServeConfig, Server


@contextlib.contextmanager
def running_server(**config):
    server = Server(ServeConfig(rest_port=0, grpc_port=0, **{"poll_seconds": 0, **config})).start()
    try:
        yield server
    finally:
        server.stop(grace=1)


def rest(server, method, path, body=None, raw=None):
    """`(status, parsed JSON or text)` for one REST call."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def grpc_stubs(server):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def half_plus_two(shared_testdata):
    """TF Serving's TF1 test servable served as model `default`, as TF Serving's own tests do."""
    with running_server(models={"default": shared_testdata / "saved_model_half_plus_two_cpu"}) as server:
        yield server


@pytest.fixture(scope="module")
def exported_repo(tmp_path_factory):
    """A repository with one exported lenet5 (8x8x1 digits input, mc_dropout signature)."""
    import keras

    import kerasdrop
    from kerasdrop.exporting import export

    keras.utils.set_random_seed(5)
    model = kerasdrop.create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    repo = tmp_path_factory.mktemp("repo") / "export"
    export(model, name="lenet5", repo=repo, mc_samples=8, models_config=None)
    return repo, model
