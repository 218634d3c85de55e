"""`assets.extra/tf_serving_warmup_requests`: PredictionLog records TF Serving replays on load.

Built with the tensorflow-serving-api protos, so TF Serving reads exactly what it expects.
"""

from __future__ import annotations

import pathlib

import numpy as np

from kerasdrop.layout import warmup_path

WARMUP_BATCH_SIZES = (1, 8)


def _warmup_array(spec, batch: int, low: float, high: float, rng) -> np.ndarray:
    # A dimension the signature leaves open gets the verifier's probe size (8).
    shape = (batch, *(8 if dim is None else int(dim) for dim in spec.row_shape))
    values = rng.uniform(low, high, size=shape)
    dtype = np.dtype(spec.dtype)
    return (np.round(values) if np.issubdtype(dtype, np.integer) else values).astype(dtype)


def warmup_records(model_name: str, inputs, low: float, high: float, signature: str = "serving_default"):
    """PredictLogs of batches 1 and 8 for `inputs` (the signature's `ServedInput`s, by their own names)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(0)
    for batch in WARMUP_BATCH_SIZES:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for spec in inputs:
            request.inputs[spec.name].CopyFrom(
                tf.make_tensor_proto(_warmup_array(spec, batch, low, high, rng))
            )
        yield prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup(version_dir: pathlib.Path, model_name: str, inputs, low: float, high: float) -> pathlib.Path:
    """Writes the warmup file; `inputs`: the `ServedInput`s of `serving_default` (interface.py)."""
    import tensorflow as tf

    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_records(model_name, inputs, low, high):
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


def predict_requests(path: pathlib.Path) -> list[tuple[str, dict]]:
    """`(signature name, {input: array})` of each PredictRequest record of a warmup file, in file order
    (other record kinds are skipped; an unnamed signature is serving_default, as TF Serving reads it)."""
    import tensorflow as tf

    return [
        (
            log.predict_log.request.model_spec.signature_name or "serving_default",
            {name: tf.make_ndarray(tensor) for name, tensor in log.predict_log.request.inputs.items()},
        )
        for log in read_warmup(path)
        if log.WhichOneof("log_type") == "predict_log"
    ]
