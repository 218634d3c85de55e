"""`kerasdrop export --int8`: `model.int8.onnx` by ONNX Runtime static quantisation (QDQ, per-tensor),
calibrated on the run's training data, published only when top-1 accuracy on the run's test split
drops by at most `max_drop` points. Accuracy, drop, size and latency vs fp32 on this machine are
recorded either way.
"""

from __future__ import annotations

import dataclasses
import pathlib
import statistics
import time

import numpy as np

from kerasdrop._validation import invalid_argument, is_number
from kerasdrop.layout import INT8_ONNX_FILE, ONNX_FILE

INT8_FILE = INT8_ONNX_FILE  # the name callers of this module know
INT8_BACKEND = "onnx-int8"
DEFAULT_MAX_DROP = 0.5  # accuracy points (percent) the issue allows int8 to lose on the test split
CALIBRATION_EXAMPLES = 1024  # MinMax calibration settles within a few hundred images of a small data set
LATENCY_BATCHES = (1, 64)
LATENCY_SECONDS = 1.0  # per model and batch size: enough calls for a stable median on a busy machine
# Golden outputs of the int8 file: integer kernels differ by instruction set (VNNI, AVX2's u8s8 with
# saturation), so another CPU may move a probability by a quantisation step of the output.
GOLDEN_TOLERANCE = {"atol": 1e-2, "rtol": 1e-2}


@dataclasses.dataclass
class Int8Result:
    published: bool
    reason: str
    record: dict  # what verification.json and the export's output show


def check_max_drop(value) -> float:
    if not is_number(value) or not 0.0 <= value <= 100.0:
        raise invalid_argument("int8_max_drop", "accuracy points in [0, 100]", value)
    return float(value)


def check_int8_source(source) -> pathlib.Path:
    """The run directory whose data calibrates and gates int8; refuses a model that has none."""
    from kerasdrop.exporting.model_card import find_run

    run_dir, why = find_run(source)
    if run_dir is None:
        raise invalid_argument("int8", "a run's model.keras (int8 is calibrated on the run's training data and "
                               f"published only if its test-split accuracy holds; {why})", True)
    return run_dir


def check_int8_model(model) -> None:
    """The gate measures top-1 accuracy: refused for anything but a softmax classifier, before any work."""
    from kerasdrop.exporting.interface import serving_interface

    interface = serving_interface(model)
    if not interface.classifier:
        raise invalid_argument("int8", "a softmax classifier (the int8 gate compares top-1 accuracy on the run's "
                               f"test split); this model maps {interface.describe()}", True)


def run_datasets(run_dir: pathlib.Path):
    """The run's train and test pipelines, split exactly as its training was."""
    from kerasdrop.training.build import recipe_datasets
    from kerasdrop.training.recipe import load_recipe

    return recipe_datasets(load_recipe(run_dir / "recipe.toml"))


def _session(path: pathlib.Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # as the serving backend runs it: one request per thread
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _input_and_scores(session) -> tuple[str, str]:
    """`(input name, probability output name)`: the one input and the float output of shape (batch, classes)."""
    inputs = session.get_inputs()
    scores = [output.name for output in session.get_outputs() if output.type == "tensor(float)" and len(output.shape) == 2]
    if len(inputs) != 1 or len(scores) != 1:
        raise invalid_argument("int8", "a classifier with one input and one float (batch, classes) output to measure "
                               "top-1 accuracy on", f"inputs {[i.name for i in inputs]}, float outputs {scores}")
    return inputs[0].name, scores[0]


class _CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over the first training batches."""

    def __init__(self, batches, input_name: str):
        self._feeds = iter([{input_name: images} for images in batches])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # onnxruntime >= 1.17 may ask; the one pass it makes needs no rewind
        pass


def calibration_batches(dataset, limit: int = CALIBRATION_EXAMPLES) -> list[np.ndarray]:
    batches, count = [], 0
    for images, _ in dataset:
        batches.append(np.asarray(images, dtype="float32"))
        count += len(batches[-1])
        if count >= limit:
            break
    return batches


def quantize(fp32_path: pathlib.Path, int8_path: pathlib.Path, batches: list[np.ndarray]) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    input_name, _ = _input_and_scores(_session(fp32_path))
    quantize_static(str(fp32_path), str(int8_path), _CalibrationReader(batches, input_name),
                    quant_format=QuantFormat.QDQ, per_channel=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)


def accuracy(session, dataset) -> float:
    input_name, scores = _input_and_scores(session)
    correct = total = 0
    for images, labels in dataset:
        (probabilities,) = session.run([scores], {input_name: np.asarray(images, dtype="float32")})
        correct += int(np.sum(np.argmax(probabilities, axis=-1) == np.asarray(labels)))
        total += len(probabilities)
    return correct / total if total else float("nan")


def median_latency_ms(session, images: np.ndarray, seconds: float = LATENCY_SECONDS) -> float:
    input_name, _ = _input_and_scores(session)
    feed = {input_name: images}
    session.run(None, feed)  # first call allocates
    timings, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 5:
        started = time.perf_counter()
        session.run(None, feed)
        timings.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(timings)


def latency(fp32, int8, row_shape, seconds: float = LATENCY_SECONDS) -> dict:
    """Median ms per call of both models, measured one after the other at each batch size, and int8/fp32."""
    rng = np.random.default_rng(0)
    found = {}
    for batch in LATENCY_BATCHES:
        images = rng.uniform(0.0, 1.0, (batch, *row_shape)).astype("float32")
        fp32_ms, int8_ms = median_latency_ms(fp32, images, seconds), median_latency_ms(int8, images, seconds)
        found[str(batch)] = {"fp32_ms": round(fp32_ms, 4), "int8_ms": round(int8_ms, 4),
                             "int8_over_fp32": round(int8_ms / fp32_ms, 3)}
    return found


def _verified(path: pathlib.Path, probe_range) -> tuple[bool, list[str]]:
    """The verifier's ONNX checks on the int8 file: graph scan, repeatable, batch independent."""
    from kerasdrop.verification.api import check_onnx
    from kerasdrop.verification.report import Report

    report = Report(target=str(path), kind="onnx")
    check_onnx(path, report, probe_range=probe_range)
    return report.ok, [f"[{f.check}] {f.location}: {f.message}" for f in report.errors]


def build_int8(staging: pathlib.Path, run_dir: pathlib.Path, *, max_drop: float, row_shape, probe_range,
               latency_seconds: float = LATENCY_SECONDS) -> Int8Result:
    """Quantises `staging/model.onnx`, measures it against fp32 and keeps `model.int8.onnx` only if it passes."""
    data = run_datasets(run_dir)
    fp32_path, int8_path = staging / ONNX_FILE, staging / INT8_FILE
    calibration = calibration_batches(data.train)
    quantize(fp32_path, int8_path, calibration)
    fp32, int8 = _session(fp32_path), _session(int8_path)
    fp32_accuracy, int8_accuracy = accuracy(fp32, data.test), accuracy(int8, data.test)
    drop = 100.0 * (fp32_accuracy - int8_accuracy)
    verified, findings = _verified(int8_path, probe_range)
    record = {
        "file": INT8_FILE, "quantization": "onnxruntime quantize_static, QDQ, int8 weights and activations, "
        "per-tensor, MinMax calibration",
        "calibration": f"{sum(len(batch) for batch in calibration)} training images of {run_dir}",
        "test_examples": data.info.num_test,
        "fp32_accuracy": round(fp32_accuracy, 6), "int8_accuracy": round(int8_accuracy, 6),
        "drop_points": round(drop, 4), "max_drop_points": max_drop,
        "fp32_bytes": fp32_path.stat().st_size, "int8_bytes": int8_path.stat().st_size,
        "latency_ms": latency(fp32, int8, row_shape, latency_seconds), "verified": verified,
    }
    record["size_ratio"] = round(record["int8_bytes"] / record["fp32_bytes"], 3)
    if not verified:
        reason = "the int8 file failed verification: " + "; ".join(findings)
    elif drop > max_drop:
        reason = (f"top-1 accuracy on the test split drops by {drop:.2f} points ({100 * fp32_accuracy:.2f}% fp32 -> "
                  f"{100 * int8_accuracy:.2f}% int8), more than the {max_drop:g} allowed (--int8-max-drop)")
    else:
        reason = f"accuracy drop {drop:.2f} points <= {max_drop:g}"
    published = verified and drop <= max_drop
    if not published:
        int8_path.unlink()
    record.update(published=published, reason=reason)
    return Int8Result(published, reason, record)


def int8_runner(staging: pathlib.Path):
    """`model.int8.onnx` as the onnx-int8 serving backend runs it, for golden.json."""
    from kerasdrop.verification import runtimes

    return runtimes.onnx_runtime(_session(staging / INT8_FILE))


def describe(record: dict) -> list[str]:
    """The export's printed lines about int8: accuracy, drop, size, latency ratios side by side."""
    verdict = "published" if record["published"] else f"REFUSED ({ONNX_FILE}, fp32, is still published)"
    lines = [f"int8 {record['file']}: {verdict}: {record['reason']}",
             f"  top-1 accuracy on {record['test_examples']} test images: fp32 {100 * record['fp32_accuracy']:.2f}%  "
             f"int8 {100 * record['int8_accuracy']:.2f}%  drop {record['drop_points']:.2f} points "
             f"(max {record['max_drop_points']:g})",
             f"  size: fp32 {record['fp32_bytes']:,} B  int8 {record['int8_bytes']:,} B  ratio {record['size_ratio']:.3f}",
             "  latency on this machine, median ms per call in ONNX Runtime (1 thread):",
             "    batch     fp32     int8  int8/fp32"]
    lines += [f"    {batch:>5}  {row['fp32_ms']:7.3f}  {row['int8_ms']:7.3f}  {row['int8_over_fp32']:9.2f}"
              for batch, row in record["latency_ms"].items()]
    return lines
