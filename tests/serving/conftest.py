"""Servers started in-process on free loopback ports, stopped after the test module."""

import contextlib
import json
import urllib.error
import urllib.request

import pytest

from kerasdrop.serving.process.server import ServeConfig, Server


@contextlib.contextmanager
def running_server(**config):
    server = Server(ServeConfig(rest_port=0, grpc_port=0, **{"poll_seconds": 0, **config})).start()
    try:
        yield server
    finally:
        server.stop(grace=1)


def make_slow(loaded, seconds: float) -> None:
    """Every run of `loaded` (a LoadedVersion) takes `seconds` longer, and the version is no longer
    "cheap": a model that slow has its requests run on threads, not on the event loop."""
    import time

    run = loaded.backend.run
    loaded.backend.run = lambda *args: (time.sleep(seconds), run(*args))[1]
    loaded.cheap = False


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
    from tensorflow_serving.apis import (
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(
        channel
    ), model_service_pb2_grpc.ModelServiceStub(channel)


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


def write_golden(version_dir, *, backend="tf", edit=None):
    """golden.json as `kerasdrop export` writes it (the shared contract): the outputs the version gives
    for its warmup requests on `serving_default`, with the verifier's tolerance. `edit(document)`
    may change it before it is written (a tampered copy)."""
    import pathlib

    from kerasdrop.layout import WARMUP_PATH as DEFAULT_REQUESTS
    from kerasdrop.serving.models.backends import load_backend
    from kerasdrop.serving.models.golden import replay
    from kerasdrop.verification.numerical import TOLERANCE

    version_dir = pathlib.Path(version_dir)
    answers = replay(version_dir / DEFAULT_REQUESTS, load_backend(backend, version_dir), "serving_default")
    document = {
        "format": 1,
        "requests": DEFAULT_REQUESTS,
        "signature": "serving_default",
        "outputs": [{key: value.tolist() for key, value in answer.items()} for answer in answers],
        "dtypes": {key: str(value.dtype) for key, value in answers[0].items()},
        "tolerance": dict(TOLERANCE),
    }
    if edit is not None:
        edit(document)
    (version_dir / "golden.json").write_text(json.dumps(document))
    return document
