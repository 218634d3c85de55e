"""Request logs from models.config's logging_config: every protocol's sampled requests as
PredictionLog TFRecords (replayable as warmup), never blocking a request, rotated and capped."""

import shutil
import threading
import time

import numpy as np
import pytest

from kerasdrop.exporting.warmup import predict_requests
from kerasdrop.layout import MODELS_CONFIG_FILE
from kerasdrop.serving.models.metrics import Metrics
from kerasdrop.serving.models.repository import ConfigError, models_config_settings
from kerasdrop.serving.models.request_log import (
    DROPPED_METRIC,
    LogLimits,
    LogSettings,
    RequestLogs,
    log_files,
    read_request_log,
)
from tests.serving.conftest import grpc_stubs, rest, running_server

IMAGE = np.random.default_rng(7).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


def logging_config_text(name: str, prefix: str, rate: float = 1.0) -> str:
    return (
        f'model_config_list {{\n  config {{\n    name: "{name}"\n    base_path: "/models/{name}"\n'
        f'    model_platform: "tensorflow"\n    logging_config {{\n      log_collector_config {{\n'
        f'        type: "tfrecord"\n        filename_prefix: "{prefix}"\n      }}\n'
        f"      sampling_config {{ sampling_rate: {rate} }}\n    }}\n  }}\n}}\n"
    )


def test_requests_of_every_protocol_are_logged_as_replayable_prediction_logs(exported_repo, tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    source, model = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    config = repo / MODELS_CONFIG_FILE
    config.write_text(logging_config_text("lenet5", "logs/lenet5"))
    with running_server(repo=str(repo), models_config=str(config)) as server:
        assert rest(server, "POST", "/v1/models/lenet5:predict", {"instances": IMAGE.tolist()})[0] == 200
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "lenet5"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(IMAGE))
        grpc_stubs(server)[0].Predict(request, timeout=30)
        oip = {
            "inputs": [
                {
                    "name": "images",
                    "datatype": "FP32",
                    "shape": list(IMAGE.shape),
                    "data": IMAGE.reshape(-1).tolist(),
                }
            ]
        }
        assert rest(server, "POST", "/v2/models/lenet5/infer", oip)[0] == 200
    files = log_files(repo / "logs" / "lenet5")  # relative to models.config's directory
    assert len(files) == 1
    records = read_request_log(files[0])
    assert len(records) == 3
    expected = model(IMAGE, training=False).numpy()
    for record in records:
        spec = record.predict_log.request.model_spec
        assert (spec.name, spec.version.value, spec.signature_name) == ("lenet5", 1, "serving_default")
        np.testing.assert_allclose(tf.make_ndarray(record.predict_log.request.inputs["images"]), IMAGE)
        logged = tf.make_ndarray(record.predict_log.response.outputs["probabilities"])
        np.testing.assert_allclose(logged, expected, atol=1e-5)
    replayed = predict_requests(files[0])  # the warmup reader takes a request log as it is
    assert [name for name, _ in replayed] == ["serving_default"] * 3


def test_sampling_rate_zero_logs_nothing_and_a_bad_logging_config_names_the_field(tmp_path):
    config = tmp_path / MODELS_CONFIG_FILE
    config.write_text(logging_config_text("m", "logs/m", rate=0.0))
    assert models_config_settings(config).logging == {}
    config.write_text(logging_config_text("m", "logs/m", rate=1.5))
    with pytest.raises(ConfigError, match=r"sampling_rate must be in \[0, 1\]; received 1.5"):
        models_config_settings(config)
    config.write_text(logging_config_text("m", "logs/m").replace('"tfrecord"', '"bigquery"'))
    with pytest.raises(ConfigError, match="type must be empty or 'tfrecord'"):
        models_config_settings(config)


def _offer(logs, count, rows=1):
    logger = logs.get("m")
    for _ in range(count):
        logger.offer(1, "serving_default", {"x": np.ones((rows, 64), "float32")}, {"y": np.zeros((rows, 2))})


def test_a_full_queue_drops_samples_without_waiting_and_counts_them(tmp_path, monkeypatch):
    from kerasdrop.serving.models import request_log

    release = threading.Event()
    monkeypatch.setattr(request_log.RequestLogger, "_write", lambda self, record: release.wait(30))
    metrics = Metrics()
    logs = RequestLogs(metrics, LogLimits(queue_records=2))
    logs.configure({"m": LogSettings(tmp_path / "m", 1.0)})
    started = time.perf_counter()
    _offer(logs, 20)
    assert time.perf_counter() - started < 1.0, "offering must never wait for the writer"
    dropped = [line for line in metrics.render().splitlines() if line.startswith(DROPPED_METRIC + " ")]
    assert dropped and int(dropped[0].split()[1]) >= 17  # 1 being written, 2 queued, the rest dropped
    release.set()
    logs.stop()


def test_files_rotate_by_size_and_the_oldest_go_beyond_the_total(tmp_path):
    logs = RequestLogs(Metrics(), LogLimits(file_bytes=2000, total_bytes=6000))
    logs.configure({"m": LogSettings(tmp_path / "logs" / "m", 1.0)})
    _offer(logs, 60)  # ~330 bytes each: ~20 KB in all
    logs.stop()
    files = log_files(tmp_path / "logs" / "m")
    sizes = [path.stat().st_size for path in files]
    assert len(files) >= 2 and max(sizes) <= 2000 and sum(sizes) <= 6000, sizes
    assert read_request_log(files[-1]), "the newest file is kept and holds whole records"


@pytest.mark.parametrize(
    "value",
    [
        np.random.default_rng(0).uniform(size=(2, 3)).astype("float32"),
        np.arange(6, dtype="int64").reshape(3, 2),
        np.array([True, False]),
        np.array([b"\xff\xd8jpeg", b"png"], dtype=object),
        np.float16(2.5),
    ],
)
def test_logged_tensors_read_back_as_they_were(value):
    import tensorflow as tf

    from kerasdrop.serving.models.request_log import tensor_proto

    read = tf.make_ndarray(tensor_proto(value))
    assert read.dtype == np.asarray(value).dtype and read.shape == np.shape(value)
    assert read.tolist() == np.asarray(value).tolist()
