"""Cross-request isolation at load: a version whose answer to a request depends on the other rows of
its batch never serves, and the version serving before keeps serving."""

import logging

import numpy as np
import pytest

from kerasdrop.serving.models.isolation import IsolationError, check_signature
from kerasdrop.serving.models.manager import ModelManager


def save_module(path, *, batch_dependent: bool, warmup_rows: int | None = None):
    """A SavedModel that never went through `kerasdrop export`: `serving_default` maps `x` [None, 4]
    to `probabilities`; the batch-dependent one subtracts the batch's mean (BatchNormalization on
    batch statistics does the same). With `warmup_rows`, a TF Serving warmup file of that many rows."""
    import tensorflow as tf

    weights = tf.constant(np.arange(12, dtype="float32").reshape(4, 3) / 10)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            centred = x - tf.reduce_mean(x, axis=0, keepdims=True) if batch_dependent else x
            return {"probabilities": tf.nn.softmax(tf.matmul(centred, weights))}

    module = Module()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    if warmup_rows:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

        from kerasdrop.layout import WARMUP_PATH

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "m"
        rows = np.random.default_rng(0).uniform(0, 1, (warmup_rows, 4)).astype("float32")
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(rows))
        (path / WARMUP_PATH).parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(path / WARMUP_PATH)) as writer:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


@pytest.mark.parametrize("warmup_rows", [None, 1, 3])
def test_a_batch_dependent_version_stays_unavailable_and_the_old_one_keeps_serving(
    tmp_path, caplog, warmup_rows
):
    repo = tmp_path / "repo"
    save_module(repo / "m" / "1", batch_dependent=False)
    manager = ModelManager(repo)
    manager.sync()
    assert manager.loaded_versions() == {"m": [1]}
    save_module(repo / "m" / "2", batch_dependent=True, warmup_rows=warmup_rows)
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        manager.sync()
    assert manager.loaded_versions() == {"m": [1]}, "the batch-dependent version must not replace version 1"
    lines = [r.getMessage() for r in caplog.records if "failed to load m version 2" in r.getMessage()]
    assert len(lines) == 1 and "IsolationError" in lines[0] and "'probabilities'" in lines[0], lines
    assert "differs by" in lines[0] and "alone vs batched" in lines[0]
    rows = np.ones((1, 4), "float32")
    answer = manager.run(manager.resolve("m"), "serving_default", {"x": rows})["probabilities"]
    assert answer.shape == (1, 3)
    manager.stop()


def test_a_batch_independent_version_without_kerasdrop_files_serves(tmp_path):
    repo = tmp_path / "repo"
    save_module(repo / "m" / "1", batch_dependent=False, warmup_rows=2)
    manager = ModelManager(repo)
    manager.sync()
    assert manager.loaded_versions() == {"m": [1]}
    manager.stop()


class _PaddingSensitive:
    """A backend whose answer changes only when zero rows (padding) are in the batch."""

    def run(self, signature, inputs):
        x = inputs["x"]
        padded = float(np.any(np.all(x == 0, axis=1)))
        return {"y": x.sum(axis=1, keepdims=True) + padded}


class _Stochastic:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def run(self, signature, inputs):
        return {"y": self.rng.normal(size=(len(inputs["x"]), 1))}


def test_padding_that_changes_an_answer_is_caught():
    with pytest.raises(IsolationError, match="zero rows of padding"):
        check_signature(_PaddingSensitive(), "serving_default", {"x": np.ones((1, 4), "float32")})


def test_a_stochastic_signature_is_not_compared():
    assert check_signature(_Stochastic(), "mc_dropout", {"x": np.ones((2, 4), "float32")}) is False
