"""Check 3: numerical proofs on the function that serves predictions.

- repeatable: the same batch twice gives the same outputs;
- batch independent: each row gives the same output alone as inside a batch;
- (Keras) inference-twin parity: the same weights with every stochastic layer replaced by an
  identity and no pinned training flags give the same outputs. This is what catches a dropout mask
  that is fixed at export time (repeat calls agree, yet half the units are zeroed).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from kerasdrop.verify.report import CheckRun, Report
from kerasdrop.verify.structure import STOCHASTIC_ACTION, layer_kind

CHECK = "numerical"
# Row-alone vs in-batch outputs may use different kernels (oneDNN blocks by batch size).
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
BATCH = 6


def probe_images(shape, low: float, high: float, batch: int = BATCH, seed: int = 0) -> np.ndarray:
    """Deterministic probe inputs: `batch` rows of `shape` (None dims become 8) uniform in [low, high]."""
    dims = [8 if dim is None else int(dim) for dim in shape]
    return np.random.default_rng(seed).uniform(low, high, size=(batch, *dims)).astype("float32")


def keras_probe_range(model) -> tuple[float, float]:
    """The raw pixel range a zoo model rescales from (its `input_rescaling` layer), else [0, 1]."""
    try:
        layer = model.get_layer("input_rescaling")
    except ValueError:
        return (0.0, 1.0)
    scale, offset = float(layer.scale), float(layer.offset)
    # Every zoo model's `input_rescaling` maps [low, high] to [0, 1]: x -> x * scale + offset.
    low = -offset / scale
    return (low, low + 1.0 / scale)


def _as_dict(outputs) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {key: np.asarray(value) for key, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return {f"output_{index}": np.asarray(value) for index, value in enumerate(outputs)}
    return {"output": np.asarray(outputs)}


def _max_difference(left: dict, right: dict) -> tuple[str, float]:
    worst = ("", 0.0)
    for key in left:
        a, b = left[key].astype("float64"), right[key].astype("float64")
        difference = float(np.max(np.abs(a - b))) if a.size else 0.0
        if difference > worst[1] or not worst[0]:
            worst = (key, difference)
    return worst


def _close(left: dict, right: dict) -> bool:
    return all(np.allclose(left[key].astype("float64"), right[key].astype("float64"), **TOLERANCE) for key in left)


def check_function(function: Callable, images: np.ndarray, report: Report, *, location: str,
                   expect_stochastic: bool = False, severity: str = "error") -> None:
    """Repeatability and batch independence of `function(images) -> outputs`.

    `severity` is what a failure counts as: "warning" for call paths kerasdrop never serves.
    """
    started = time.perf_counter()
    first, second = _as_dict(function(images)), _as_dict(function(images))
    key, difference = _max_difference(first, second)
    if expect_stochastic:
        if difference == 0.0:
            report.add(CHECK, "error", location, "expected stochastic outputs (Monte Carlo dropout) but two calls "
                       "on the same batch returned identical results",
                       "check that the model has dropout layers with rate > 0 and that its outputs depend on them "
                       "(an untrained model with vanishing activations does not)")
        else:
            report.add(CHECK, "info", location, f"stochastic as intended: two calls differ by up to {difference:.3g} "
                       f"in {key!r}")
        report.checks.append(CheckRun(CHECK, location, time.perf_counter() - started, "stochastic signature"))
        return
    if not _close(first, second):
        report.add(CHECK, severity, location, f"two calls on the same batch differ by up to {difference:.3g} in "
                   f"{key!r}: inference is random", STOCHASTIC_ACTION)
        # Batch independence means nothing for outputs that change on every call anyway.
        report.checks.append(CheckRun(CHECK, location, time.perf_counter() - started, "repeat"))
        return
    else:
        report.add(CHECK, "info", location, "repeatable: the same batch twice gives the same outputs")
    rows = [_as_dict(function(images[index:index + 1])) for index in range(len(images))]
    alone = {key: np.concatenate([row[key] for row in rows]) for key in first}
    key, difference = _max_difference(first, alone)
    if not _close(first, alone):
        report.add(CHECK, severity, location, f"batch dependent: rows predicted alone differ from the same rows in a "
                   f"batch by up to {difference:.3g} in {key!r} (BatchNormalization on batch statistics?)",
                   "call BatchNormalization (and any layer using batch statistics) without training=True")
    else:
        report.add(CHECK, "info", location, f"batch independent: each row alone matches it in a batch of {len(images)} "
                   f"(max difference {difference:.2g})")
    report.tolerances.setdefault("numerical", dict(TOLERANCE))
    report.checks.append(CheckRun(CHECK, location, time.perf_counter() - started,
                                  f"repeat and batch-independence on a batch of {len(images)}"))


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
        return keras.models.clone_model(model, clone_function=clone_layer, call_function=call_layer, recursive=True)
    except (ValueError, TypeError):
        return None


def check_keras_twin(model, images: np.ndarray, report: Report) -> None:
    started = time.perf_counter()
    twin = inference_twin(model)
    if twin is None:
        report.add(CHECK, "warning", model.name, "not a functional model: the inference-twin parity check was skipped",
                   "build the model with the functional API so it can be checked")
        return
    served = _as_dict(model(images, training=False))
    reference = _as_dict(twin(images, training=False))
    key, difference = _max_difference(served, reference)
    if not _close(served, reference):
        report.add(CHECK, "error", model.name, f"outputs differ from the inference twin (same weights, stochastic "
                   f"layers removed) by up to {difference:.3g}: a layer is active at inference, possibly with a fixed "
                   "mask that repeat calls cannot reveal", STOCHASTIC_ACTION)
    else:
        report.add(CHECK, "info", model.name, f"matches its inference twin (max difference {difference:.2g})")
    report.checks.append(CheckRun(CHECK, f"{model.name} twin", time.perf_counter() - started, "inference-twin parity"))
