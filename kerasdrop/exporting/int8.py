"""`kerasdrop export --int8`: `model.int8.onnx` by ONNX Runtime static quantisation (QDQ, per-tensor),
calibrated on the run's training data, with the classifier layer and its softmax kept in float32.

Published only when `judge_int8` passes it on the run's test split: top-1 accuracy drop, the largest
probability error, NLL and ECE increase against float32, and probabilities that sum to 1. Every
figure, limit, size and latency vs fp32 on this machine is recorded either way.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import statistics
import time

import numpy as np

from kerasdrop._validation import invalid_argument, is_number
from kerasdrop.layout import INT8_ONNX_FILE, ONNX_FILE

INT8_FILE = INT8_ONNX_FILE  # the name callers of this module know
INT8_BACKEND = "onnx-int8"
DEFAULT_MAX_DROP = 0.5  # accuracy points (percent) the issue allows int8 to lose on the test split
# A float32 softmax sums to 1 within ~1e-6; a softmax whose output is quantised (1/255 steps) misses by
# ~1e-2. Not a trade-off a user may loosen: probabilities that do not sum to 1 are not probabilities.
PROBABILITY_SUM_TOLERANCE = 1e-4
# Nodes between the classifier layer's product and the softmax (bias, scale, reshapes) stay float32
# with them: quantising logits per tensor moves every probability by a step of the logits' range.
_TAIL_OPS = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Reshape",
    "Flatten",
    "Identity",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Cast",
}
_CLASSIFIER_OPS = {"MatMul", "Gemm", "Conv"}
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


@dataclasses.dataclass(frozen=True)
class Int8Limits:
    """What the int8 model may lose against float32 on the same test rows (`kerasdrop export --int8-max-*`)."""

    max_drop: float = DEFAULT_MAX_DROP
    # The largest move of any class probability on any test row: int8 input rounding moves rows near a
    # decision boundary most; 0.1 keeps a 0.79 from being served as 0.69.
    max_probability_error: float = 0.1
    # Mean -log p(true class), int8 minus fp32, in nats: 0.05 is a 5% lower likelihood per test image.
    max_nll_increase: float = 0.05
    # ECE (15 bins), int8 minus fp32: 0.02 is a fraction of what temperature scaling removes (0.05-0.15).
    max_ece_increase: float = 0.02


# The Python argument and CLI flag of each limit, for error messages and the refusal's wording.
LIMIT_FLAGS = {
    "max_drop": "--int8-max-drop",
    "max_probability_error": "--int8-max-probability-error",
    "max_nll_increase": "--int8-max-nll-increase",
    "max_ece_increase": "--int8-max-ece-increase",
}


def check_max_drop(value) -> float:
    if not is_number(value) or not 0.0 <= value <= 100.0:
        raise invalid_argument("int8_max_drop", "accuracy points in [0, 100]", value)
    return float(value)


def check_limits(max_drop=None, limits=None) -> Int8Limits:
    """The gate's limits: `limits` (an `Int8Limits`, a dict of its fields, or None for the defaults),
    with `max_drop` (`int8_max_drop`) over its max_drop when given; each value checked."""
    if isinstance(limits, Int8Limits):
        limits = dataclasses.asdict(limits)
    fields = {field.name for field in dataclasses.fields(Int8Limits)}
    if limits is not None and (not isinstance(limits, dict) or not set(limits) <= fields):
        raise invalid_argument("int8_limits", f"an Int8Limits or a dict of {sorted(fields)}", limits)
    values = {**(limits or {}), **({"max_drop": max_drop} if max_drop is not None else {})}
    expected = {
        "max_probability_error": ("a probability in [0, 1]", 1.0),
        "max_nll_increase": ("nats >= 0", math.inf),
        "max_ece_increase": ("an ECE difference in [0, 1]", 1.0),
    }
    for field, value in values.items():
        if field == "max_drop":
            values[field] = check_max_drop(value)
            continue
        meaning, ceiling = expected[field]
        if not is_number(value) or math.isnan(value) or not 0.0 <= value <= ceiling:
            raise invalid_argument(f"int8_{field}", meaning, value)
        values[field] = float(value)
    return Int8Limits(**values)


@dataclasses.dataclass
class GateVerdict:
    """`judge_int8`'s answer: `figures` (every measurement), `criteria` (one row per rule: name, value,
    limit, passed, what it measures) and `failures` (a sentence per failed rule with its figure)."""

    passed: bool
    figures: dict
    criteria: list[dict]
    failures: list[str]


def judge_int8(
    fp32_probabilities, int8_probabilities, labels, limits: Int8Limits = Int8Limits()
) -> GateVerdict:
    """The int8 gate's one rule, on any format's int8 model.

    Args:
        fp32_probabilities: `[rows, classes]` of the float32 model.
        int8_probabilities: `[rows, classes]` of the quantised model on the same rows.
        labels: `[rows]` true class indices.
        limits: what int8 may lose (`Int8Limits`).

    Returns:
        A `GateVerdict`: passed only when every criterion holds.
    """
    from kerasdrop.training import calibration

    fp32 = np.asarray(fp32_probabilities, dtype=np.float64)
    int8 = np.asarray(int8_probabilities, dtype=np.float64)
    if fp32.shape != int8.shape:
        raise invalid_argument(
            "int8_probabilities", f"the float32 probabilities' shape {fp32.shape} (the same rows)", int8.shape
        )
    figures = {
        "fp32_accuracy": calibration.accuracy(fp32, labels),
        "int8_accuracy": calibration.accuracy(int8, labels),
        "max_probability_error": float(np.max(np.abs(int8 - fp32))),
        "fp32_nll": calibration.negative_log_likelihood(fp32, labels),
        "int8_nll": calibration.negative_log_likelihood(int8, labels),
        "fp32_ece": calibration.expected_calibration_error(fp32, labels),
        "int8_ece": calibration.expected_calibration_error(int8, labels),
        "probability_sum_error": float(np.max(np.abs(int8.sum(axis=1) - 1.0))),
    }
    figures["drop_points"] = 100.0 * (figures["fp32_accuracy"] - figures["int8_accuracy"])
    figures["nll_increase"] = figures["int8_nll"] - figures["fp32_nll"]
    figures["ece_increase"] = figures["int8_ece"] - figures["fp32_ece"]
    rows = [
        (
            "accuracy_drop",
            figures["drop_points"],
            limits.max_drop,
            "max_drop",
            f"top-1 accuracy on the test split drops by {figures['drop_points']:.2f} points "
            f"({100 * figures['fp32_accuracy']:.2f}% fp32 -> {100 * figures['int8_accuracy']:.2f}% int8)",
        ),
        (
            "max_probability_error",
            figures["max_probability_error"],
            limits.max_probability_error,
            "max_probability_error",
            f"a class probability moves by up to {figures['max_probability_error']:.4f}",
        ),
        (
            "nll_increase",
            figures["nll_increase"],
            limits.max_nll_increase,
            "max_nll_increase",
            f"NLL rises by {figures['nll_increase']:.4f} nats ({figures['fp32_nll']:.4f} fp32 -> "
            f"{figures['int8_nll']:.4f} int8)",
        ),
        (
            "ece_increase",
            figures["ece_increase"],
            limits.max_ece_increase,
            "max_ece_increase",
            f"ECE rises by {figures['ece_increase']:.4f} ({figures['fp32_ece']:.4f} fp32 -> "
            f"{figures['int8_ece']:.4f} int8)",
        ),
        (
            "probability_sum_error",
            figures["probability_sum_error"],
            PROBABILITY_SUM_TOLERANCE,
            None,
            f"int8 probabilities sum to 1 only within {figures['probability_sum_error']:.2g}",
        ),
    ]
    criteria, failures = [], []
    for name, value, limit, field, sentence in rows:
        passed = bool(value <= limit)
        criteria.append({"criterion": name, "value": float(f"{value:.6g}"), "limit": limit, "passed": passed})
        if not passed:
            allowed = (
                f"the {limit:g} allowed ({LIMIT_FLAGS[field]})" if field else f"the {limit:g} a softmax keeps"
            )
            failures.append(f"{sentence}, more than {allowed}")
    return GateVerdict(not failures, figures, criteria, failures)


def check_int8_source(source) -> pathlib.Path:
    """The run directory whose data calibrates and gates int8; refuses a model that has none."""
    from kerasdrop.exporting.model_card import find_run

    run_dir, why = find_run(source)
    if run_dir is None:
        raise invalid_argument(
            "int8",
            "a run's model.keras (int8 is calibrated on the run's training data and "
            f"published only if its test-split accuracy holds; {why})",
            True,
        )
    return run_dir


def check_int8_model(model) -> None:
    """The gate measures top-1 accuracy: refused for anything but a softmax classifier, before any work."""
    from kerasdrop.exporting.interface import serving_interface

    interface = serving_interface(model)
    if not interface.classifier:
        raise invalid_argument(
            "int8",
            "a softmax classifier (the int8 gate compares top-1 accuracy on the run's "
            f"test split); this model maps {interface.describe()}",
            True,
        )


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
    scores = [
        output.name
        for output in session.get_outputs()
        if output.type == "tensor(float)" and len(output.shape) == 2
    ]
    if len(inputs) != 1 or len(scores) != 1:
        raise invalid_argument(
            "int8",
            "a classifier with one input and one float (batch, classes) output to measure top-1 accuracy on",
            f"inputs {[i.name for i in inputs]}, float outputs {scores}",
        )
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


def float_tail(graph) -> list[str]:
    """Names of the nodes kept in float32: each Softmax, everything after it (class ids), and the nodes
    that compute its input back to the classifier layer's MatMul/Gemm/Conv, so the logits are never
    rounded to int8 and the probabilities are a float softmax (they sum to 1, in no 1/255 steps)."""
    producers = {output: node for node in graph.node for output in node.output}
    kept, stack = [], []
    for node in graph.node:
        if node.op_type in ("Softmax", "LogSoftmax"):
            stack.append(node)
            upstream = producers.get(node.input[0])
            while upstream is not None and upstream.op_type in _TAIL_OPS | _CLASSIFIER_OPS:
                kept.append(upstream.name)
                if upstream.op_type in _CLASSIFIER_OPS:
                    break
                upstream = producers.get(upstream.input[0])
    while stack:  # the softmax and its consumers
        node = stack.pop()
        if node.name not in kept:
            kept.append(node.name)
            stack += [consumer for consumer in graph.node if set(consumer.input) & set(node.output)]
    return kept


def quantize(fp32_path: pathlib.Path, int8_path: pathlib.Path, batches: list[np.ndarray]) -> list[str]:
    """Writes the int8 model; returns the names of the nodes kept in float32 (`float_tail`)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    input_name, _ = _input_and_scores(_session(fp32_path))
    kept = float_tail(onnx.load(str(fp32_path)).graph)
    quantize_static(
        str(fp32_path),
        str(int8_path),
        _CalibrationReader(batches, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=False,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=kept,
    )
    return kept


def split_probabilities(session, dataset) -> tuple[np.ndarray, np.ndarray]:
    """`(probabilities [rows, classes], labels [rows])` of `session` on every batch of `dataset`."""
    input_name, scores = _input_and_scores(session)
    found, labels = [], []
    for images, batch_labels in dataset:
        found.append(session.run([scores], {input_name: np.asarray(images, dtype="float32")})[0])
        labels.append(np.asarray(batch_labels))
    return np.concatenate(found), np.concatenate(labels)


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
        found[str(batch)] = {
            "fp32_ms": round(fp32_ms, 4),
            "int8_ms": round(int8_ms, 4),
            "int8_over_fp32": round(int8_ms / fp32_ms, 3),
        }
    return found


def _verified(path: pathlib.Path, probe_range) -> tuple[bool, list[str]]:
    """The verifier's ONNX checks on the int8 file: graph scan, repeatable, batch independent."""
    from kerasdrop.verification.api import check_onnx
    from kerasdrop.verification.report import Report

    report = Report(target=str(path), kind="onnx")
    check_onnx(path, report, probe_range=probe_range)
    return report.ok, [f"[{f.check}] {f.location}: {f.message}" for f in report.errors]


def build_int8(
    staging: pathlib.Path,
    run_dir: pathlib.Path,
    *,
    limits: Int8Limits,
    row_shape,
    probe_range,
    latency_seconds: float = LATENCY_SECONDS,
) -> Int8Result:
    """Quantises `staging/model.onnx`, measures it against fp32 and keeps `model.int8.onnx` only if
    `judge_int8` passes it; otherwise the refusal names each failed criterion with its figure."""
    data = run_datasets(run_dir)
    fp32_path, int8_path = staging / ONNX_FILE, staging / INT8_FILE
    calibration = calibration_batches(data.train)
    kept = quantize(fp32_path, int8_path, calibration)
    fp32, int8 = _session(fp32_path), _session(int8_path)
    fp32_probabilities, labels = split_probabilities(fp32, data.test)
    int8_probabilities, _ = split_probabilities(int8, data.test)
    verdict = judge_int8(fp32_probabilities, int8_probabilities, labels, limits)
    verified, findings = _verified(int8_path, probe_range)
    figures = {key: float(f"{value:.6g}") for key, value in verdict.figures.items()}
    record = {
        "file": INT8_FILE,
        "quantization": "onnxruntime quantize_static, QDQ, int8 weights and activations, "
        "per-tensor, MinMax calibration; the classifier layer and softmax kept in float32",
        "float32_nodes": kept,
        "calibration": f"{sum(len(batch) for batch in calibration)} training images of {run_dir}",
        "test_examples": len(labels),
        **figures,
        "max_drop_points": limits.max_drop,
        "limits": dataclasses.asdict(limits),
        "criteria": verdict.criteria,
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "latency_ms": latency(fp32, int8, row_shape, latency_seconds),
        "verified": verified,
    }
    record["size_ratio"] = round(record["int8_bytes"] / record["fp32_bytes"], 3)
    published = verified and verdict.passed
    if not verified:
        reason = "the int8 file failed verification: " + "; ".join(findings)
    elif not verdict.passed:
        reason = "; ".join(verdict.failures)
    else:
        reason = (
            f"every criterion holds: accuracy drop {verdict.figures['drop_points']:.2f} points <= "
            f"{limits.max_drop:g}, largest probability error {verdict.figures['max_probability_error']:.4f} <= "
            f"{limits.max_probability_error:g}, NLL {verdict.figures['nll_increase']:+.4f} <= "
            f"{limits.max_nll_increase:g}, ECE {verdict.figures['ece_increase']:+.4f} <= "
            f"{limits.max_ece_increase:g}, probabilities sum to 1 within "
            f"{verdict.figures['probability_sum_error']:.2g}"
        )
    if not published:
        int8_path.unlink()
    record.update(published=published, reason=reason)
    return Int8Result(published, reason, record)


def int8_runner(staging: pathlib.Path):
    """`model.int8.onnx` as the onnx-int8 serving backend runs it, for golden.json."""
    from kerasdrop.verification import runtimes

    return runtimes.onnx_runtime(_session(staging / INT8_FILE))


_CRITERION_LABELS = {
    "accuracy_drop": "accuracy drop (points)",
    "max_probability_error": "largest probability error",
    "nll_increase": "NLL increase (nats)",
    "ece_increase": "ECE increase (15 bins)",
    "probability_sum_error": "|sum of probabilities - 1|",
}


def describe(record: dict) -> list[str]:
    """The export's printed lines about int8: each criterion against its limit, size, latency ratios."""
    verdict = "published" if record["published"] else f"REFUSED ({ONNX_FILE}, fp32, is still published)"
    lines = [
        f"int8 {record['file']}: {verdict}: {record['reason']}",
        f"  on {record['test_examples']} test images: top-1 accuracy fp32 {100 * record['fp32_accuracy']:.2f}%  "
        f"int8 {100 * record['int8_accuracy']:.2f}%  drop {record['drop_points']:.2f} points; NLL fp32 "
        f"{record['fp32_nll']:.4f} int8 {record['int8_nll']:.4f}; ECE fp32 {record['fp32_ece']:.4f} int8 "
        f"{record['int8_ece']:.4f}",
        "    criterion                      int8 vs fp32     limit  verdict",
    ]
    lines += [
        f"    {_CRITERION_LABELS[row['criterion']]:<29} {row['value']:>12.4g} {row['limit']:>9.4g}  "
        f"{'pass' if row['passed'] else 'FAIL'}"
        for row in record["criteria"]
    ]
    lines += [
        f"  size: fp32 {record['fp32_bytes']:,} B  int8 {record['int8_bytes']:,} B  ratio {record['size_ratio']:.3f}",
        "  latency on this machine, median ms per call in ONNX Runtime (1 thread):",
        "    batch     fp32     int8  int8/fp32",
    ]
    lines += [
        f"    {batch:>5}  {row['fp32_ms']:7.3f}  {row['int8_ms']:7.3f}  {row['int8_over_fp32']:9.2f}"
        for batch, row in record["latency_ms"].items()
    ]
    return lines
