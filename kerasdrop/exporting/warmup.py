"""`assets.extra/tf_serving_warmup_requests`: PredictionLog records TF Serving replays on load.

Built with the tensorflow-serving-api protos, so TF Serving reads exactly what it expects.
"""

from __future__ import annotations

import pathlib

import numpy as np

WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_BATCH_SIZES = (1, 8)


def warmup_records(model_name: str, row_shape, low: float, high: float, signature: str = "serving_default"):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(0)
    for batch in WARMUP_BATCH_SIZES:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        images = rng.uniform(low, high, size=(batch, *row_shape)).astype("float32")
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
        yield prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup(version_dir: pathlib.Path, model_name: str, row_shape, low: float, high: float) -> pathlib.Path:
    import tensorflow as tf

    path = pathlib.Path(version_dir) / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(model_name, row_shape, low, high):
            writer.write(record.SerializeToString())
    return path


def read_warmup(path: pathlib.Path) -> list:
    """The PredictionLog records of a warmup file (for tests and `kerasdrop serve`)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    return records
