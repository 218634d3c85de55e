"""Backends that run one model version: `tf` (SavedModel signatures), `onnx` (ONNX Runtime), `openvino`,
and `auto`, which picks `tf` or `onnx` per version from what its export proved (choose_backend).

Both expose the SavedModel's SignatureDefs (what TF Serving reports as metadata) and
`run(signature, {input: array}) -> {output: array}`.
"""

from __future__ import annotations

import os
import pathlib
import threading
from typing import TYPE_CHECKING

from kerasdrop.layout import INT8_ONNX_FILE, ONNX_FILE, VERIFICATION_FILE
from kerasdrop.serving.errors import ServingError, invalid, signature_not_found

if TYPE_CHECKING:  # numpy at run time only where used: `kerasdrop --help` imports the backend choices
    import numpy as np


def read_signature_defs(version_dir: pathlib.Path):
    """The `serve` MetaGraph's signature_def map, exactly as stored (TF Serving serves this)."""
    from kerasdrop.verification.graph import read_saved_model

    return read_saved_model(version_dir).signature_def


def find_signature(backend, signature: str, protocol: str):
    """The SignatureDef a request names, or TF Serving's error for the protocol (the one lookup)."""
    signature_def = backend.signature_defs.get(signature)
    if signature_def is None or signature not in backend.signature_names():
        error = signature_not_found(signature, protocol)
        if getattr(backend, "missing_hint", None) and signature in backend.missing_hint[0]:
            error.message += backend.missing_hint[1]
        raise error
    return signature_def


def signature_def_map(backend):
    """The metadata's SignatureDefMap (REST and gRPC GetModelMetadata)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in backend.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    return signature_map


_CONTEXT_LINES = (
    "Graph execution error",
    "Detected at node",
    "<stack traces unavailable>",
    "Traceback",
    "File ",
)


def error_cause(error: Exception) -> str:
    """The line of a runtime's error that says what went wrong: TensorFlow puts "Graph execution
    error:" and a node's stack first and the cause after them (`jpeg::Uncompress failed. Invalid JPEG
    data ...`), where the first line alone was an empty "Graph execution error:"."""
    import re

    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
    causes = [line for line in lines if not line.startswith(_CONTEXT_LINES)]
    cause = causes[0] if causes else (lines[0] if lines else type(error).__name__)
    node = re.search(r"\{\{node ([^}]+)\}\}", text)
    cause = re.sub(r"\s*\[\[\{\{.*$|\s*\[Op:[^\]]*\]$", "", cause).rstrip(":") or type(error).__name__
    return (
        f"{cause} (in op {node.group(1).rsplit('/', 1)[-1]})"
        if node and node.group(1) not in cause
        else cause
    )


class TensorFlowBackend:
    name = "tf"

    def __init__(self, version_dir: pathlib.Path):
        import tensorflow as tf

        self.signature_defs = read_signature_defs(version_dir)
        self._loaded = tf.saved_model.load(str(version_dir))
        self._functions = dict(self._loaded.signatures)

    def signature_names(self) -> list[str]:
        return [name for name in self.signature_defs if not name.startswith("__")]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        function = self._functions.get(signature_name)
        if function is None:  # in the SignatureDefs but not loadable as a function
            raise signature_not_found(signature_name, "rest")
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise invalid(error_cause(error)) from None
        return {key: value.numpy() for key, value in outputs.items()}


class OnnxBackend:
    """`model.onnx` in ONNX Runtime behind the same API; only `serving_default` (no mc_dropout)."""

    name = "onnx"
    filename = ONNX_FILE
    exported_with = "ONNX"

    def __init__(self, version_dir: pathlib.Path):
        path = pathlib.Path(version_dir) / self.filename
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: the {self.name} backend serves versions exported with "
                f"{self.exported_with}"
            )
        all_defs = read_signature_defs(version_dir)
        self.signature_defs = {"serving_default": all_defs["serving_default"]}
        self.missing_hint = (
            set(all_defs) - {"serving_default"},
            " (the onnx backend serves serving_default only; it needs --backend tf)",
        )
        self._session = _onnx_session(path, threads=1)  # one thread per request when several run
        self._outputs = [output.name for output in self._session.get_outputs()]
        self._alone_session = self._parallel_if_faster(path)
        self._lock = threading.Lock()
        self._running = 0
        # Whether another worker of the server has requests for this model in flight (the manager
        # sets it from the admission counts): a run alone in this process is not alone on the
        # machine while another process runs too.
        self.crowded = lambda: False

    def _parallel_if_faster(self, path: pathlib.Path):
        """The session for a request that runs alone on the machine (no other run here, and not
        `crowded`): one on every core if that is faster for this model, measured here (median of 5
        runs each on a zero row). Measured before: resnet18 at 224x224x3 took 50 ms on two threads
        against 59 ms on one (idle machine); LeNet-5 at 32x32x1 took 97 us against 62 us, waking a
        second thread costing more than it computes. Spinning is off, so the idle threads of the
        parallel session cost nothing. It is not used while another worker has requests in flight
        (`crowded`): two workers each running a lone run on every core put four threads on two
        cores (resnet18 at 64 connections, 2 workers: docs/serving.md)."""
        cores = os.cpu_count() or 1
        feed = _zero_row(self.signature_defs["serving_default"])
        if cores == 1 or feed is None:
            return self._session
        parallel = _onnx_session(path, threads=cores)
        single_seconds = _median_seconds(self._session, self._outputs, feed)
        if _median_seconds(parallel, self._outputs, feed) < 0.9 * single_seconds:
            return parallel
        return self._session

    def signature_names(self) -> list[str]:
        return ["serving_default"]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self._running += 1
            alone = self._running == 1
        try:
            session = (
                self._alone_session
                if alone and self._alone_session is not self._session and not self.crowded()
                else self._session
            )
            try:
                results = session.run(self._outputs, inputs)
            except Exception as error:  # onnxruntime raises its own exception types for bad feeds
                raise invalid(error_cause(error)) from None
        finally:
            with self._lock:
                self._running -= 1
        return dict(zip(self._outputs, results))


def row_seconds(backend) -> float | None:
    """How long one row takes here on the slowest of the backend's signatures (each timed on a row
    of zeros: median of 5 runs after one to warm up), or None when any signature cannot be timed
    that way: inputs that are not float tensors (strings: image bytes, tf.Examples), of unknown
    rank, or with an unknown dimension besides the batch (a 1x1 image would say nothing of a real one)."""
    slowest = 0.0
    for signature in backend.signature_names():
        signature_def = backend.signature_defs[signature]
        feed = _zero_row(signature_def)
        if feed is None or any(
            dim.size < 0 for info in signature_def.inputs.values() for dim in info.tensor_shape.dim[1:]
        ):
            return None
        try:
            slowest = max(slowest, _median_of(lambda s=signature, f=feed: backend.run(s, f)))
        except Exception:  # a signature that does not take zeros is timed by nobody: not "cheap"
            return None
    return slowest


_DT_FLOAT = 1  # tensorflow.DataType.DT_FLOAT


def _zero_row(signature_def) -> dict | None:
    """Zeros for each input of the signature (unknown dims as 1), or None for inputs that are not
    floats of known rank."""
    import numpy as np

    feed = {}
    for key, info in signature_def.inputs.items():
        if info.dtype != _DT_FLOAT or info.tensor_shape.unknown_rank:
            return None
        feed[key] = np.zeros([dim.size if dim.size > 0 else 1 for dim in info.tensor_shape.dim], np.float32)
    return feed


def _median_seconds(session, outputs: list[str], feed: dict) -> float:
    return _median_of(lambda: session.run(outputs, feed))


def _median_of(run, runs: int = 5) -> float:
    import time

    run()  # the first run allocates
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return sorted(times)[runs // 2]


def _onnx_session(path: pathlib.Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxInt8Backend(OnnxBackend):
    """`model.int8.onnx`, which `kerasdrop export --int8` publishes only when its accuracy held."""

    name = "onnx-int8"
    filename = INT8_ONNX_FILE
    exported_with = (
        f"--int8 whose accuracy gate passed ({VERIFICATION_FILE}'s int8 section says why not otherwise)"
    )


class OpenVinoBackend:
    """OpenVINO Runtime on the CPU, in float32: `model.xml` (OpenVINO IR) when the version has one, else
    `model.onnx` read directly (OpenVINO's ONNX frontend; no file written into a published version).
    float32 because on a bfloat16-capable CPU OpenVINO's default is bfloat16, which differs from the
    verified model by more than the verifier's tolerance. Only `serving_default`."""

    name = "openvino"
    exported_with = "ONNX (or --formats ...,openvino)"

    def __init__(self, version_dir: pathlib.Path):
        import openvino

        from kerasdrop.layout import ONNX_FILE, OPENVINO_XML_FILE

        version_dir = pathlib.Path(version_dir)
        path = next(
            (version_dir / name for name in (OPENVINO_XML_FILE, ONNX_FILE) if (version_dir / name).is_file()),
            None,
        )
        if path is None:
            raise FileNotFoundError(
                f"neither {OPENVINO_XML_FILE} nor {ONNX_FILE} in {version_dir}: the openvino "
                f"backend serves versions exported with {self.exported_with}"
            )
        self.signature_defs = read_signature_defs(version_dir)
        core = openvino.Core()
        self._compiled = core.compile_model(
            core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )
        self._outputs = [port.any_name for port in self._compiled.outputs]
        self._requests = threading.local()  # an infer request is not shared between threads

    def signature_names(self) -> list[str]:
        return ["serving_default"]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        try:
            results = request.infer(inputs)
        except Exception as error:  # OpenVINO raises RuntimeError for bad feeds
            raise invalid(error_cause(error)) from None
        return {name: results[port] for name, port in zip(self._outputs, self._compiled.outputs)}


BACKENDS = {
    "tf": TensorFlowBackend,
    "onnx": OnnxBackend,
    "onnx-int8": OnnxInt8Backend,
    "openvino": OpenVinoBackend,
}
AUTO = "auto"
# `kerasdrop serve`'s default. bench/serve_latency.py measures it beside each explicit backend
# (docs/speed.md): for LeNet-5 a request costs the TF backend several times what ONNX Runtime takes,
# so a version whose model.onnx was proven at parity is served from it, any other from the SavedModel.
DEFAULT_BACKEND = AUTO
BACKEND_CHOICES = (AUTO, *BACKENDS)


def choose_backend(version_dir: pathlib.Path) -> tuple[str, str]:
    """`(backend, why)` for the `auto` backend: `onnx` when the version's export proved model.onnx
    answers as the SavedModel does (verification.json passed, with a parity check that ran
    onnxruntime) and the SavedModel serves nothing ONNX does not (serving_default only); `tf` otherwise."""
    import json

    version_dir = pathlib.Path(version_dir)
    if not (version_dir / ONNX_FILE).is_file():
        return "tf", f"no {ONNX_FILE}"
    try:
        report = json.loads((version_dir / VERIFICATION_FILE).read_text())
    except FileNotFoundError:
        return "tf", f"no {VERIFICATION_FILE} proves {ONNX_FILE}'s parity"
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return "tf", f"{VERIFICATION_FILE} cannot be read ({type(error).__name__})"
    if not isinstance(report, dict) or report.get("ok") is not True:
        return "tf", f"{VERIFICATION_FILE} does not report a pass"
    checks = report.get("checks") if isinstance(report.get("checks"), list) else []
    if not any(
        isinstance(check, dict)
        and check.get("check") == "parity"
        and "onnxruntime" in str(check.get("target"))
        for check in checks
    ):
        return "tf", f"{VERIFICATION_FILE} records no parity check of {ONNX_FILE}"
    others = [
        name
        for name in read_signature_defs(version_dir)
        if not name.startswith("__") and name != "serving_default"
    ]
    if others:
        return "tf", f"signatures {', '.join(sorted(others))} run only in TensorFlow"
    return "onnx", f"{ONNX_FILE} verified at parity with the SavedModel ({VERIFICATION_FILE})"


def load_backend(kind: str, version_dir: pathlib.Path):
    """The backend `kind` over `version_dir`; for `auto`, the one choose_backend picks. Every backend
    returned has `chosen`: why it serves this version (a sentence for the start line and the log)."""
    if kind not in BACKEND_CHOICES:
        raise ServingError(
            "INVALID_ARGUMENT", f"Unknown backend {kind!r}; expected one of {', '.join(BACKEND_CHOICES)}"
        )
    why = "--backend " + kind
    if kind == AUTO:
        kind, why = choose_backend(version_dir)
    backend = BACKENDS[kind](version_dir)
    backend.chosen = why
    return backend
