"""Check 3: numerical proofs on each function that serves predictions.

- repeatable: the same inputs twice give the same outputs (every output; exactly for non-float ones);
- batch independent: each row gives the same outputs alone as inside a batch;
- (Keras) inference-twin parity: the same weights with every stochastic layer replaced by an
  identity and no pinned training flags give the same outputs. This is what catches a dropout mask
  that is fixed at export time (repeat calls agree, yet half the units are zeroed).

Probes at a magnitude outside the model's operating range count under OUT_OF_RANGE_RULE.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from kerasdrop.errors import KerasdropError
from kerasdrop.verification import probes
from kerasdrop.verification.probes import keras_declared_range
from kerasdrop.verification.report import CheckRun, Report
from kerasdrop.verification.structure import STOCHASTIC_ACTION, layer_kind

CHECK = "numerical"
# The one tolerance of every float comparison the verifier makes (row alone vs in a batch, runtime vs
# runtime): they may use different kernels (oneDNN blocks by batch size, ONNX Runtime fuses differently).
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
BATCH = probes.BATCH


class ProbeFailed(KerasdropError):
    """The servable raised on probes of its own declared dtypes and shapes."""


# Probes far outside a model's operating range saturate its softmax, and float noise that differs by
# batch size (kernels are chosen by batch shape) then flips a class: a difference of up to 1 that no
# served input can show. Batch statistics shift every row of a batch (each row is moved by the others).
OUT_OF_RANGE_RULE = (
    "a batch dependence seen only at a magnitude the model does not operate at is evidence only "
    "when the same kind of difference shows at an in-range magnitude (those are judged first and "
    "stop the verification on an error), or when every row of the batch differs, the pattern "
    "of batch statistics; some rows flipping is float noise in a saturated output"
)


@dataclasses.dataclass(frozen=True)
class OutOfRange:
    """Probes at a magnitude outside the model's operating range, and the in-range magnitudes judged before."""

    magnitude: str
    in_range: tuple[str, ...]

    @classmethod
    def of(cls, magnitude, scale) -> OutOfRange | None:
        """None for an in-range `probes.Magnitude`; else its context among `scale`, the magnitudes probed."""
        if magnitude.in_range:
            return None
        return cls(magnitude.name, tuple(other.name for other in scale if other.in_range))

    def describe(self) -> str:
        in_range = ", ".join(self.in_range) or "none"
        return (
            f"{self.magnitude} probes lie outside the magnitudes a model is fed in service (in range, and "
            f"judged batch independent first: {in_range})"
        )


def probe_images(shape, low: float, high: float, batch: int = BATCH, seed: int = 0) -> np.ndarray:
    """Deterministic float32 probes: `batch` rows of `shape` (None dims become 8) within [low, high]."""
    spec = probes.InputSpec("images", np.dtype("float32"), tuple(shape))
    return probes.probe_inputs([spec], low, high, batch=batch, seed=seed)["images"]


def keras_probe_range(model) -> tuple[float, float]:
    """The raw input range the model rescales from (its Rescaling layer), else [0, 1]."""
    return keras_declared_range(model) or probes.DEFAULT_RANGE


def as_dict(outputs) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {str(key): np.asarray(value) for key, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return {f"output_{index}": np.asarray(value) for index, value in enumerate(outputs)}
    return {"output": np.asarray(outputs)}


def call(function: Callable, inputs) -> dict[str, np.ndarray]:
    """`function(inputs)` as `{output name: array}`; any failure becomes ProbeFailed with one line."""
    try:
        return as_dict(function(inputs))
    except Exception as error:  # TF, ORT and Keras raise many types; all mean "rejected the probes"
        raise ProbeFailed(one_line(error)) from None


def one_line(error: Exception) -> str:
    """`Type: message` in one line; for TF graph errors the op's message, not the traceback around it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("[[", "Detected at", "File ", "Graph execution error"))
        and not line.endswith(("in <module>", "(most recent call last):"))
    ]
    text = (useful[-1] if useful else lines[0] if lines else "")[:300]
    return f"{type(error).__name__}: {text}"


def _is_float(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating)


def differences(left: dict, right: dict) -> tuple[str, float, bool]:
    """`(worst output, its max difference, all close)`: floats within TOLERANCE, everything else exact."""
    worst_key, worst_difference, worst_bad, all_close = "", 0.0, False, True
    for key in left:
        a, b = np.asarray(left[key]), np.asarray(right.get(key))
        if a.shape != b.shape:
            return key, float("inf"), False
        if _is_float(a) and _is_float(b):
            close = bool(np.allclose(a, b, equal_nan=True, **TOLERANCE))
            finite = np.isfinite(a) & np.isfinite(b)
            difference = (
                float(np.max(np.abs(a[finite].astype("float64") - b[finite].astype("float64"))))
                if finite.any()
                else 0.0
            )
            if not close and not difference:
                difference = float("inf")  # NaN or infinity in one and not the other
        else:
            close = bool(np.array_equal(a, b))
            difference = 0.0 if close else float(np.sum(a != b))
        all_close &= close
        if not worst_key or (not close, difference) > (worst_bad, worst_difference):
            worst_key, worst_difference, worst_bad = key, difference, not close
    return worst_key, worst_difference, all_close


def _describe(key: str, difference: float, outputs: dict) -> str:
    if outputs and key in outputs and not _is_float(np.asarray(outputs[key])):
        return (
            f"{int(difference)} values of {key!r} (compared exactly: dtype {np.asarray(outputs[key]).dtype})"
        )
    return f"up to {difference:.3g} in {key!r}"


def check_function(
    function: Callable,
    inputs,
    report: Report,
    *,
    location: str,
    expect_stochastic: bool = False,
    severity: str = "error",
    batch_test: bool = True,
    optional: bool = False,
    out_of_range: OutOfRange | None = None,
) -> None:
    """Repeatability and batch independence of `function(inputs) -> outputs`.

    `inputs`: one array or `{input name: array}`. `severity` is what a failure counts as ("warning"
    for call paths kerasdrop never serves). `batch_test=False` for fixed-shape inputs; a frozenset
    names the batched inputs (the others are passed whole). `optional`: probes of an extra magnitude,
    which a servable may refuse (a ratio must be < 1): a refusal is recorded, not an error.
    `out_of_range`: the probes' magnitude is outside the model's operating range, so a batch
    dependence counts only under OUT_OF_RANGE_RULE (a repeat that differs is random at any magnitude).
    """
    started = time.perf_counter()
    if optional:
        try:
            call(function, inputs)
        except ProbeFailed as failure:
            report.add(
                CHECK,
                "info",
                location,
                f"refuses probes of this magnitude ({failure}): outside the inputs it "
                "accepts, so not judged there",
            )
            return
    try:
        _check(function, inputs, report, location, expect_stochastic, severity, batch_test, out_of_range)
    except ProbeFailed as failure:
        report.add(
            CHECK,
            severity,
            location,
            f"raised on probes of its declared input dtypes and shapes ({failure}): "
            "its behaviour at inference could not be proven",
            "make the servable accept inputs of its "
            "signature's dtypes and shapes, or include warmup requests (assets.extra) it accepts",
        )
    report.tolerances.setdefault("numerical", dict(TOLERANCE))
    report.checks.append(
        CheckRun(
            CHECK,
            location,
            time.perf_counter() - started,
            "stochastic signature" if expect_stochastic else "repeat and batch independence",
        )
    )


def _check(function, inputs, report, location, expect_stochastic, severity, batch_test, out_of_range) -> None:
    first, second = call(function, inputs), call(function, inputs)
    key, difference, close = differences(first, second)
    if expect_stochastic:
        if close and difference == 0.0:
            report.add(
                CHECK,
                "error",
                location,
                "expected stochastic outputs (Monte Carlo dropout) but two calls "
                "on the same batch returned identical results",
                "check that the model has dropout layers with rate > 0 and that its outputs depend on them "
                "(an untrained model with vanishing activations does not)",
            )
        else:
            report.add(
                CHECK,
                "info",
                location,
                f"stochastic as intended: two calls differ by {_describe(key, difference, first)}",
            )
        return
    if not close:
        report.add(
            CHECK,
            severity,
            location,
            f"two calls on the same batch differ by {_describe(key, difference, first)}: inference is random",
            STOCHASTIC_ACTION,
        )
        return  # batch independence means nothing for outputs that change on every call anyway
    report.add(CHECK, "info", location, "repeatable: the same batch twice gives the same outputs")
    if not isinstance(inputs, dict):
        inputs_by_name, unwrap = {"": inputs}, True
    else:
        inputs_by_name, unwrap = inputs, False
    # `batch_test` may name the batched inputs; the others (0-d flags, fixed tensors) go whole to every call.
    batched = batch_test if isinstance(batch_test, frozenset) else None
    size = probes.batch_size(inputs_by_name, batched)
    batch_major = [name for name, value in first.items() if value.ndim and len(value) == size]
    if not batch_test or size < 2 or not batch_major:
        why = "a batch of one" if batch_test and size < 2 else "fixed batch shape"
        report.add(CHECK, "info", location, f"{why}: batch independence not applicable")
        return
    rows = [
        call(
            function,
            probes.row(inputs_by_name, index, batched)[""]
            if unwrap
            else probes.row(inputs_by_name, index, batched),
        )
        for index in range(size)
    ]
    alone = {name: np.concatenate([row[name] for row in rows]) for name in batch_major}
    key, difference, close = differences({name: first[name] for name in batch_major}, alone)
    if not close and out_of_range is not None:
        _judge_out_of_range(
            report,
            location,
            severity,
            out_of_range,
            {name: first[name] for name in batch_major},
            alone,
            size,
            _describe(key, difference, first),
        )
    elif not close:
        report.add(
            CHECK,
            severity,
            location,
            f"batch dependent: rows predicted alone differ from the same rows in a "
            f"batch by {_describe(key, difference, first)} (BatchNormalization on batch statistics?)",
            "call BatchNormalization (and any layer using batch statistics) without training=True",
        )
    else:
        stress = f"; {out_of_range.describe()}" if out_of_range is not None else ""
        report.add(
            CHECK,
            "info",
            location,
            f"batch independent: each row alone matches it in a batch of {size} "
            f"(max difference {difference:.2g}){stress}",
        )


def rows_differing(batched: dict, alone: dict, size: int) -> int:
    """How many of the `size` rows differ beyond TOLERANCE (any output) between a batch and alone."""
    differing = np.zeros(size, dtype=bool)
    for name, value in batched.items():
        a, b = np.asarray(value), np.asarray(alone[name])
        if _is_float(a) and _is_float(b):
            close = np.isclose(a, b, equal_nan=True, **TOLERANCE)
        else:
            close = a == b
        differing |= ~close.reshape(size, -1).all(axis=1)
    return int(differing.sum())


def _judge_out_of_range(
    report, location, severity, out_of_range: OutOfRange, batched, alone, size, described: str
) -> None:
    """OUT_OF_RANGE_RULE on a batch dependence seen at an out-of-range magnitude: kept when every row
    differs (batch statistics' pattern), else discounted with the reason."""
    count = rows_differing(batched, alone, size)
    report.tolerances.setdefault("out_of_range_rule", OUT_OF_RANGE_RULE)  # the card's verification states it
    seen = f"rows predicted alone differ from the same rows in a batch by {described}"
    if count == size:
        report.add(
            CHECK,
            severity,
            location,
            f"batch dependent: {seen}, and every one of the {size} rows differs: "
            f"kept as evidence though {out_of_range.describe()}, because every row shifted is the pattern of "
            "batch statistics (BatchNormalization on batch statistics?), not float noise",
            "call BatchNormalization (and any layer using batch statistics) without training=True",
        )
    else:
        report.add(
            CHECK,
            "info",
            location,
            f"batch dependence discounted: {seen}, but only {count} of {size} rows "
            f"differ and {out_of_range.describe()}: far outside its range a softmax saturates and float noise "
            "flips a class, while batch statistics shift every row",
        )


def inference_twin(model):
    """The same layers (same weights) with stochastic layers as identities and no pinned training flags.

    Returns None for models that are not functional (their graph cannot be rewired).
    """
    import keras

    def clone_layer(layer):
        if layer_kind(layer) in ("random", "augmentation"):
            return keras.layers.Identity(name=layer.name)
        return layer

    def call_layer(layer, *args, **kwargs):
        kwargs.pop("training", None)
        return layer(*args, **kwargs)

    try:
        return keras.models.clone_model(
            model, clone_function=clone_layer, call_function=call_layer, recursive=True
        )
    except Exception:  # clone_model raises ValueError/TypeError/NotImplementedError on subclassed graphs
        return None


def check_keras_twin(
    model,
    run_model: Callable,
    inputs,
    report: Report,
    *,
    training=False,
    location: str | None = None,
    severity: str = "error",
) -> float | None:
    """`run_model(model, inputs, training)` calls a Keras model on probe inputs; the model called with
    `training` (False, or None as `model(x)`) is compared with its twin called with training=False.

    Returns the largest difference, or None when the comparison could not be made.
    """
    started = time.perf_counter()
    location = location or model.name
    twin = inference_twin(model)
    if twin is None:
        report.add(
            CHECK,
            "warning",
            location,
            "not a functional model: the inference-twin parity check was skipped",
            "build the model with the functional API so it can be checked",
        )
        return None
    try:
        served = call(lambda batch: run_model(model, batch, training), inputs)
        reference = call(lambda batch: run_model(twin, batch, False), inputs)
    except ProbeFailed as failure:
        report.add(CHECK, "warning", location, f"inference-twin parity skipped: {failure}")
        return None
    key, difference, close = differences(served, reference)
    if not close:
        report.add(
            CHECK,
            severity,
            location,
            f"outputs differ from the inference twin (same weights, stochastic "
            f"layers removed) by {_describe(key, difference, served)}: a layer is active at inference, possibly "
            "with a fixed mask that repeat calls cannot reveal",
            STOCHASTIC_ACTION,
        )
    else:
        report.add(CHECK, "info", location, f"matches its inference twin (max difference {difference:.2g})")
    report.checks.append(
        CheckRun(CHECK, f"{location} twin", time.perf_counter() - started, "inference-twin parity")
    )
    return difference
