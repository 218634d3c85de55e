"""Sampled request logs, as a model's `logging_config` in models.config asks (TF Serving's
logging_config.proto): each sampled request and its answer as a `tensorflow.serving.PredictionLog`
record in TFRecord files, the format of `assets.extra/tf_serving_warmup_requests`.

Logged at the model layer (`ModelManager.run`), so requests of every protocol are logged the same
way; only the tensors are recorded (inputs, outputs, model, version, signature), never headers,
addresses or other metadata. A request never waits on the disk: a sample goes into a bounded queue
that one thread per model writes out; when the queue is full the sample is dropped and counted in
/metrics. Files rotate at a size, and the oldest files of a prefix are deleted beyond a total size.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import queue
import random
import threading

from kerasdrop.layout import REQUEST_LOG_SUFFIX
from kerasdrop.serving import limits

log = logging.getLogger("kerasdrop.serve")

DROPPED_METRIC = ":kerasdrop:serving:request_log_dropped_total"
DROPPED_HELP = "Sampled requests not logged because the request log's queue was full."
WRITTEN_METRIC = ":kerasdrop:serving:request_log_written_total"
WRITTEN_HELP = "Sampled requests written to request logs."
COLLECTOR_TYPES = ("", "tfrecord")  # log_collector_config.type that kerasdrop writes: TFRecord files


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """One model's logging_config, checked: where its files go and the share of requests logged."""

    prefix: pathlib.Path
    sampling_rate: float


@dataclasses.dataclass(frozen=True)
class LogLimits:
    queue_records: int = limits.DEFAULT_REQUEST_LOG_QUEUE
    file_bytes: int = limits.DEFAULT_REQUEST_LOG_FILE_BYTES
    total_bytes: int = limits.DEFAULT_REQUEST_LOG_TOTAL_BYTES


def log_settings(name: str, logging_config, base: pathlib.Path) -> LogSettings | None:
    """The settings of a ModelConfig's `logging_config` (None when it logs nothing); a relative
    `filename_prefix` is read from `base` (the directory of models.config). ValueError on a bad one."""
    collector = logging_config.log_collector_config
    rate = logging_config.sampling_config.sampling_rate
    if collector.type not in COLLECTOR_TYPES:
        raise ValueError(
            f"model {name!r}: log_collector_config.type must be empty or 'tfrecord' (kerasdrop writes "
            f"PredictionLog records in TFRecord files); received {collector.type!r}"
        )
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"model {name!r}: sampling_config.sampling_rate must be in [0, 1]; received {rate}")
    if not collector.filename_prefix:
        if rate > 0:
            raise ValueError(
                f"model {name!r}: logging_config samples requests but log_collector_config has no "
                "filename_prefix to write them to"
            )
        return None
    if rate == 0:
        return None
    return LogSettings(base / pathlib.Path(collector.filename_prefix), float(rate))


def log_files(prefix: pathlib.Path) -> list[pathlib.Path]:
    """The request log files of `prefix`, oldest first (every process's)."""
    prefix = pathlib.Path(prefix)
    if not prefix.parent.is_dir():
        return []
    found = []
    for path in prefix.parent.glob(f"{prefix.name}-*{REQUEST_LOG_SUFFIX}"):
        try:
            found.append((path.stat().st_mtime_ns, path.name, path))
        except OSError:  # deleted by another process's size cap meanwhile
            continue
    return [path for _, _, path in sorted(found)]


def read_request_log(path: pathlib.Path) -> list:
    """The PredictionLog records of one file; a record cut short (a file still being written) ends it."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            record = prediction_log_pb2.PredictionLog()
            record.ParseFromString(raw.numpy())
            records.append(record)
    except tf.errors.DataLossError:
        pass
    return records


# NumPy dtypes whose TensorProto is their bytes in `tensor_content` (as tf.make_tensor_proto writes
# them), by TensorFlow DataType number: built directly, ~5x faster than tf.make_tensor_proto.
_CONTENT_DTYPES = {
    "float32": 1,
    "float64": 2,
    "int32": 3,
    "uint8": 4,
    "int16": 5,
    "int8": 6,
    "int64": 9,
    "uint16": 17,
    "float16": 19,
    "uint32": 22,
    "uint64": 23,
}


def tensor_proto(value):
    """A TensorProto of `value` that tf.make_ndarray reads back as it was."""
    import numpy as np

    array = np.asarray(value)
    number = _CONTENT_DTYPES.get(array.dtype.name)
    if number is None or array.dtype.byteorder == ">":
        import tensorflow as tf

        return tf.make_tensor_proto(array)  # strings (image bytes), bools, big-endian data
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto(dtype=number, tensor_content=np.ascontiguousarray(array).tobytes())
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def prediction_log(name: str, version: int, signature: str, inputs: dict, outputs: dict):
    """One PredictionLog: the request and its response, each with model name, version and signature."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.version.value = version
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tensor_proto(value))
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request, response=response)
    )


class RequestLogger:
    """One model's sampler, queue and writer thread in this process."""

    def __init__(self, name: str, settings: LogSettings, limits_: LogLimits, metrics):
        self.name = name
        self.settings = settings
        self.limits = limits_
        self._metrics = metrics
        self._queue: queue.Queue = queue.Queue(maxsize=limits_.queue_records)
        self._random = random.Random()
        self._writer = None
        self._file_bytes = 0
        self._file_index = 0
        self._thread = threading.Thread(target=self._loop, name=f"kerasdrop-request-log-{name}", daemon=True)
        self._thread.start()

    def offer(self, version: int, signature: str, inputs: dict, outputs: dict) -> None:
        """Queues the request for writing when it is sampled; never blocks."""
        if self._random.random() >= self.settings.sampling_rate:
            return
        try:
            self._queue.put_nowait((version, signature, inputs, outputs))
        except queue.Full:
            self._metrics.count(DROPPED_METRIC, DROPPED_HELP)

    def stop(self) -> None:
        """Writes what is queued, closes the file and ends the thread."""
        self._queue.put(None)  # blocks only while full: the writer is emptying it
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                self._write(prediction_log(self.name, *item).SerializeToString())
                self._metrics.count(WRITTEN_METRIC, WRITTEN_HELP)
            except Exception as error:  # a full disk must not end logging for good, nor reach a request
                self._metrics.count(DROPPED_METRIC, DROPPED_HELP)
                log.error("request log of %s: %s: %s", self.name, type(error).__name__, error)
                self._close()
        self._close()

    def _write(self, record: bytes) -> None:
        import tensorflow as tf

        size = len(record) + 16  # TFRecord framing: length, its CRC, the data's CRC
        if self._writer is not None and self._file_bytes + size > self.limits.file_bytes:
            self._close()
        if self._writer is None:
            self._make_room()
            self._file_index += 1
            path = self._path(self._file_index)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = tf.io.TFRecordWriter(str(path))
            self._file_bytes = 0
        self._writer.write(record)
        if self._queue.empty():  # a reader (kerasdrop promote) sees whole records; one flush per burst
            self._writer.flush()
        self._file_bytes += size

    def _path(self, index: int) -> pathlib.Path:
        prefix = self.settings.prefix
        return prefix.with_name(f"{prefix.name}-{os.getpid()}-{index:05d}{REQUEST_LOG_SUFFIX}")

    def _make_room(self) -> None:
        """Deletes the oldest files of the prefix until a new full file fits under the total cap."""
        files = log_files(self.settings.prefix)
        sizes = {}
        for path in files:
            try:
                sizes[path] = path.stat().st_size
            except OSError:
                continue
        total = sum(sizes.values())
        for path in files:
            if total + self.limits.file_bytes <= self.limits.total_bytes:
                break
            path.unlink(missing_ok=True)
            total -= sizes.get(path, 0)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RequestLogs:
    """The loggers of every model whose logging_config samples requests, kept in step with models.config."""

    def __init__(self, metrics, limits_: LogLimits | None = None):
        self._metrics = metrics
        self._limits = limits_ or LogLimits()
        self._loggers: dict[str, RequestLogger] = {}
        metrics.count(DROPPED_METRIC, DROPPED_HELP, by=0)

    def configure(self, settings: dict[str, LogSettings]) -> None:
        """Starts, replaces or stops loggers so that exactly the models of `settings` log."""
        for name in list(self._loggers):
            if settings.get(name) != self._loggers[name].settings:
                self._loggers.pop(name).stop()
                log.info("request log of %s stopped", name)
        for name, wanted in settings.items():
            if name not in self._loggers:
                self._loggers[name] = RequestLogger(name, wanted, self._limits, self._metrics)
                log.info(
                    "logging %g of the requests of %s to %s-*%s",
                    wanted.sampling_rate,
                    name,
                    wanted.prefix,
                    REQUEST_LOG_SUFFIX,
                )

    def get(self, name: str) -> RequestLogger | None:
        return self._loggers.get(name)

    def stop(self) -> None:
        self.configure({})
