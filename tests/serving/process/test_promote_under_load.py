"""A real `kerasdrop serve` under load while `kerasdrop promote` moves a label and rolls it back:
no request fails, and label requests follow the label."""

import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from kerasdrop.layout import MODELS_CONFIG_FILE
from kerasdrop.serving.models.request_log import log_files
from tests.ports import free_port

CONFIG = """model_config_list {
  config {
    name: "lenet5"
    base_path: "{base_path}"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    logging_config {
      log_collector_config { type: "tfrecord" filename_prefix: "logs/lenet5" }
      sampling_config { sampling_rate: 0.5 }
    }
  }
}
"""


class Clients:
    """Threads sending gRPC Predict to the label `stable`, noting each answer's version or failure."""

    def __init__(self, grpc_port: int, threads: int = 3):
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(grpc_port, seed)) for seed in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, port: int, seed: int) -> None:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        rng = np.random.default_rng(seed)
        while not self._stop.is_set():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "lenet5"
            request.model_spec.version_label = "stable"
            request.inputs["images"].CopyFrom(
                tf.make_tensor_proto(rng.uniform(0, 16, (1, 8, 8, 1)).astype("float32"))
            )
            try:
                self.versions.append(stub.Predict(request, timeout=30).model_spec.version.value)
            except grpc.RpcError as error:
                self.failures.append(f"{error.code()}: {error.details()}")
            time.sleep(0.01)

    def wait_for(self, version: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        start = len(self.versions)
        while time.monotonic() < deadline:
            recent = self.versions[start:][-10:]
            if len(recent) == 10 and set(recent) == {version}:
                return
            time.sleep(0.1)
        raise AssertionError(f"label requests did not move to version {version}: last {self.versions[-10:]}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _promote(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kerasdrop.cli", "promote", "lenet5", "--label", "stable", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_promote_and_rollback_under_load_fail_no_request(exported_repo, tmp_path):
    source, _ = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    shutil.copytree(repo / "lenet5" / "1", repo / "lenet5" / "2")
    # The file alone names what is served (as TF Serving reads it): an absolute base_path.
    (repo / MODELS_CONFIG_FILE).write_text(CONFIG.replace("{base_path}", str(repo / "lenet5")))
    rest_port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdrop.cli",
            "serve",
            "--models-config",
            str(repo / MODELS_CONFIG_FILE),
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
            "--workers",
            "1",
            "--poll-seconds",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    clients = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{rest_port}/v1/models/lenet5/versions/2", timeout=2
                ):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.3)
        clients = Clients(grpc_port)
        clients.wait_for(1)
        while not log_files(repo / "logs" / "lenet5") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # some more logged requests
        promoted = _promote("--to", "2", "--repo", str(repo))
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert "logged requests from" in promoted.stdout and "100.00%" in promoted.stdout, promoted.stdout
        clients.wait_for(2)
        rolled_back = _promote("--rollback", "--repo", str(repo))
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        clients.wait_for(1)
    finally:
        if clients is not None:
            clients.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert clients.failures == [], clients.failures[:5]
    assert len(clients.versions) > 30
