"""The real Open Inference Protocol clients (tritonclient, HTTP and gRPC, with their defaults: binary
tensors over HTTP, raw contents over gRPC) against `kerasdrop serve`, on both backends: the same
answers as TF Serving's protocol gives for the same image."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.ports import free_port
from tests.serving.conftest import write_golden

IMAGES = np.random.default_rng(11).uniform(0, 16, (3, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module", params=["tf", "onnx"])
def served(request, exported_repo, tmp_path_factory):
    """`kerasdrop serve --backend B` in its own process over a copy of the export with golden.json."""
    import tritonclient.http

    source, _ = exported_repo
    repo = tmp_path_factory.mktemp("oip") / "export"
    shutil.copytree(source, repo)
    write_golden(repo / "lenet5" / "1")
    rest_port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdrop.cli",
            "serve",
            "--repo",
            str(repo),
            "--backend",
            request.param,
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
            "--require-verification",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = tritonclient.http.InferenceServerClient(f"127.0.0.1:{rest_port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.is_server_ready():
                    break
            except Exception:  # not listening yet
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.3)
        yield request.param, rest_port, grpc_port
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def _tf_serving_answer(rest_port):
    from kerasdrop.cli.client import ServingClient

    return ServingClient(f"http://127.0.0.1:{rest_port}").predict("lenet5", IMAGES)


@pytest.mark.slow
def test_tritonclient_http_infer_equals_the_tf_serving_protocol(served):
    import tritonclient.http as http

    backend, rest_port, _ = served
    client = http.InferenceServerClient(f"127.0.0.1:{rest_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lenet5")
    metadata = client.get_model_metadata("lenet5")
    assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert metadata["platform"] == {"tf": "tensorflow_savedmodel", "onnx": "onnx_onnxv1"}[backend]
    image = http.InferInput("images", list(IMAGES.shape), "FP32")
    image.set_data_from_numpy(IMAGES)  # binary_data=True: the binary tensor extension
    result = client.infer("lenet5", [image], request_id="r1")
    expected = _tf_serving_answer(rest_port)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])
    np.testing.assert_array_equal(result.as_numpy("class_ids"), expected["class_ids"])
    assert result.get_response()["id"] == "r1"
    json_input = http.InferInput("images", list(IMAGES.shape), "FP32")
    json_input.set_data_from_numpy(IMAGES, binary_data=False)
    only = client.infer(
        "lenet5", [json_input], outputs=[http.InferRequestedOutput("class_ids", binary_data=False)]
    )
    assert only.as_numpy("probabilities") is None
    np.testing.assert_array_equal(only.as_numpy("class_ids"), expected["class_ids"])
    client.close()


@pytest.mark.slow
def test_tritonclient_grpc_infer_equals_the_tf_serving_protocol(served):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    backend, rest_port, grpc_port = served
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lenet5", "1")
    metadata = client.get_model_metadata("lenet5", as_json=True)
    assert [output["name"] for output in metadata["outputs"]] == ["class_ids", "probabilities"]
    image = triton_grpc.InferInput("images", list(IMAGES.shape), "FP32")
    image.set_data_from_numpy(IMAGES)  # raw_input_contents
    result = client.infer("lenet5", [image], model_version="1")
    expected = _tf_serving_answer(rest_port)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])
    np.testing.assert_array_equal(result.as_numpy("class_ids"), expected["class_ids"])
    wrong = triton_grpc.InferInput("images", [1, 8, 8, 1], "FP64")
    wrong.set_data_from_numpy(IMAGES[:1].astype("float64"))
    with pytest.raises(InferenceServerException, match="expects datatype FP32; received FP64") as raised:
        client.infer("lenet5", [wrong])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    client.close()
