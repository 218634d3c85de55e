"""Probe inputs for the numerical checks: one array per declared input, of its own dtype and shape.

Float and integer probes span the model's real input range with rows of different brightness (a
batch-dependent layer shows only when rows differ); strings are decimal numerals; booleans random.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

BATCH = 6
# A dimension the signature leaves open (other than the batch) gets this size in probes.
OPEN_DIMENSION = 8
DEFAULT_RANGE = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input of a servable: its name, numpy dtype (`object` for strings), per-row shape, and
    whether its first dimension is an open batch dimension (False: fixed shape, no batch test)."""

    name: str
    dtype: np.dtype
    row_shape: tuple
    batched: bool = True

    @property
    def kind(self) -> str:
        if self.dtype == object:
            return "string"
        if self.dtype == np.bool_:
            return "bool"
        # Everything not an integer is probed as a float (float16/32/64, bfloat16, complex).
        return "int" if np.issubdtype(self.dtype, np.integer) else "float"


def all_batched(specs: list[InputSpec]) -> bool:
    return bool(specs) and all(spec.batched for spec in specs)


def _one_input(spec: InputSpec, low: float, high: float, batch: int, rng) -> np.ndarray:
    dims = [OPEN_DIMENSION if dim is None else int(dim) for dim in spec.row_shape]
    shape = (batch, *dims) if spec.batched else tuple(dims)
    rows = shape[0] if shape else 1
    # Row i spans [low, low + (high - low) * (i + 1) / rows]: dark rows next to bright ones.
    brightness = (np.arange(1, rows + 1) / rows).reshape((-1,) + (1,) * (len(shape) - 1)) if shape else 1.0
    unit = rng.uniform(0.0, 1.0, size=shape) * brightness
    if spec.kind == "bool":
        return unit > 0.5 * brightness
    if spec.kind == "string":
        numbers = np.round(low + (high - low) * unit).astype("int64")
        return np.vectorize(lambda value: str(value).encode(), otypes=[object])(numbers) if shape else \
            np.array(str(int(numbers)).encode(), dtype=object)
    values = low + (high - low) * unit
    if spec.kind == "int":
        limits = np.iinfo(spec.dtype)
        values = np.clip(np.round(values), limits.min, limits.max)
    return np.asarray(values).astype(spec.dtype)


def probe_inputs(specs: list[InputSpec], low: float, high: float, batch: int = BATCH,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """`{input name: array}`: `batch` rows per batched input, uniform within [low, high] per row brightness."""
    rng = np.random.default_rng(seed)
    return {spec.name: _one_input(spec, low, high, batch, rng) for spec in specs}


def integer_range(specs: list[InputSpec], low: float, high: float) -> tuple[float, float]:
    """Integer-only models (token ids, uint8 pixels) declare no float range: use the dtype's sensible span."""
    if (low, high) != DEFAULT_RANGE or any(spec.kind == "float" for spec in specs):
        return low, high
    if any(spec.dtype == np.uint8 for spec in specs):
        return 0.0, 255.0
    return 0.0, 1.0


def batch_size(inputs: dict[str, np.ndarray]) -> int:
    return min(len(value) for value in inputs.values()) if inputs else 0


def row(inputs: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    return {name: value[index:index + 1] for name, value in inputs.items()}


def keras_input_specs(model) -> list[InputSpec]:
    """One spec per model input; empty for a model that declares none (an unbuilt subclassed model)."""
    specs = []
    try:
        tensors = list(model.inputs or [])
    except (AttributeError, ValueError):
        return []
    for tensor in tensors:
        dtype = object if str(tensor.dtype) == "string" else np.dtype(str(tensor.dtype))
        shape = tuple(tensor.shape)
        specs.append(InputSpec(tensor.name, dtype, shape[1:], batched=bool(shape) and shape[0] is None))
    return specs


def keras_declared_range(model) -> tuple[float, float] | None:
    """The raw input range the model's first Rescaling or Normalization layer declares, if any.

    Rescaling maps it to [0, 1] (or [-1, 1] with offset -1); Normalization's mean +- 2 standard
    deviations covers the inputs it was adapted to.
    """
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Rescaling):
            return _rescaling_range(layer)
        if isinstance(layer, keras.layers.Normalization) and getattr(layer, "mean", None) is not None:
            try:
                mean, spread = np.asarray(layer.mean), 2.0 * np.sqrt(np.asarray(layer.variance))
                return float(np.min(mean - spread)), float(np.max(mean + spread))
            except (TypeError, ValueError):
                return None
    return None


def _rescaling_range(layer) -> tuple[float, float] | None:
    try:
        scale, offset = float(np.mean(layer.scale)), float(np.mean(layer.offset))
    except (TypeError, ValueError):
        return None
    if scale <= 0:
        return None
    low = -offset / scale
    # scale 1/255 (offset 0) or 1/127.5 (offset -1): the raw span is 1/scale or 2/scale.
    return (low, low + (2.0 if offset < 0 and abs(offset + 1.0) < 1e-6 else 1.0) / scale)


def run_recorded_range(path: pathlib.Path | None) -> tuple[float, float] | None:
    """The pixel range a training run recorded beside its `.keras` file (`recipe.toml` provenance)."""
    if path is None:
        return None
    recipe = pathlib.Path(path).parent / "recipe.toml"
    if not recipe.is_file():
        return None
    try:
        import tomllib

        data = tomllib.loads(recipe.read_text())
        low, high = data["provenance"]["dataset"]["pixel_range"]
        return float(low), float(high)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def warmup_probes(directory: pathlib.Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """Requests in `assets.extra/tf_serving_warmup_requests`, by signature: real inputs to replay.

    Predict requests give their input tensors; Classify/Regress requests their tf.Examples, serialized
    as the one string input such signatures take (key `""`, filled in by the caller).
    """
    path = pathlib.Path(directory) / "assets.extra" / "tf_serving_warmup_requests"
    if not path.is_file():
        return {}
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    found: dict[str, list[dict[str, np.ndarray]]] = {}
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(raw.numpy())
            kind = log.WhichOneof("log_type")
            request = getattr(log, kind).request if kind else None
            if kind == "predict_log":
                inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
            elif kind in ("classify_log", "regress_log"):
                examples = [example.SerializeToString() for example in request.input.example_list.examples]
                inputs = {"": np.array(examples, dtype=object)}
            else:
                continue
            found.setdefault(request.model_spec.signature_name or "serving_default", []).append(inputs)
    except Exception:  # a corrupt warmup file is TF Serving's load error, reported by the caller as absent
        return {}
    return found


def warmup_range(requests: list[dict[str, np.ndarray]]) -> tuple[float, float] | None:
    values = [value.astype("float64").ravel() for inputs in requests for value in inputs.values()
              if value.dtype != object and value.size]
    if not values:
        return None
    joined = np.concatenate(values)
    low, high = float(joined.min()), float(joined.max())
    return (low, high) if high > low else None
