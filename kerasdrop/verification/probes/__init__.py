"""Probe inputs for the numerical checks: one array per declared input, of its own dtype and shape.

Float and integer probes span the model's real input range with rows of different brightness (a
batch-dependent layer shows only when rows differ); with no declared range, several magnitudes.
Token ids stay inside the model's vocabulary, strings are its lookup tokens (else decimal
numerals), padding masks are prefixes of different lengths, booleans random, 0-d inputs scalars.

Every probe the verifier feeds lives in this package: arrays per declared input here (dtype, shape,
range, magnitudes), tf.Examples for signatures that parse them (`examples.py`), encoded images for
signatures that decode them (`images.py`). Imports nothing of the verifier's checks.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from kerasdrop.layout import warmup_path

BATCH = 6
# A dimension the signature leaves open (other than the batch) gets this size in probes.
OPEN_DIMENSION = 8
DEFAULT_RANGE = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Magnitude:
    """A range float probes span (`normal`: standard normal values, rows of different spread).

    `in_range`: a range a model may be fed in service. False for a stress magnitude far outside any
    operating range, where a softmax saturates and float noise can flip a class: a difference seen
    only there counts under `numerical.OUT_OF_RANGE_RULE`.
    """

    name: str
    low: float
    high: float
    distribution: str = "uniform"
    in_range: bool = True


# With no range declared anywhere, probes take each of these in turn, so a rescaling that depends on
# the batch (`x / max(1, max(batch))`) shows whatever numbers the users send. Images arrive in [0, 1],
# 0..255 or standardised; nobody sends +-1e4, so `large` only stresses (a threshold only it crosses).
UNDECLARED_MAGNITUDES = (
    Magnitude("unit interval", 0.0, 1.0),
    Magnitude("0..255 pixels", 0.0, 255.0),
    Magnitude("standard normal", -1.0, 1.0, "normal"),
    Magnitude("large", -1e4, 1e4, in_range=False),
)


def magnitudes(declared: tuple[float, float] | None, specs=None) -> list[Magnitude]:
    """The declared range alone; else every magnitude (one when no input is a float: they do not apply)."""
    if declared is not None:
        return [
            Magnitude(
                f"declared range {declared[0]:g}..{declared[1]:g}", float(declared[0]), float(declared[1])
            )
        ]
    if specs is not None and not any(spec.kind == "float" for spec in specs):
        return [UNDECLARED_MAGNITUDES[0]]
    return list(UNDECLARED_MAGNITUDES)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input of a servable: its name, numpy dtype (`object` for strings), per-row shape, and
    whether its first dimension is an open batch dimension (False: fixed shape, no batch test)."""

    name: str
    dtype: np.dtype
    row_shape: tuple
    batched: bool = True
    vocabulary: int | None = None  # integer ids: the smallest vocabulary (Embedding input_dim) they index
    tokens: tuple | None = None  # strings: the lookup table's tokens

    @property
    def is_padding_mask(self) -> bool:
        """keras-hub's `padding_mask` and friends: ones then zeros along the sequence."""
        return "mask" in self.name.lower() and self.kind in ("bool", "int") and len(self.row_shape) == 1

    @property
    def kind(self) -> str:
        if self.dtype == object:
            return "string"
        if self.dtype == np.bool_:
            return "bool"
        # Everything not an integer is probed as a float (float16/32/64, bfloat16, complex).
        return "int" if np.issubdtype(self.dtype, np.integer) else "float"


def batched_names(specs: list[InputSpec]) -> frozenset:
    """The inputs a batch test slices row by row; the others (0-d flags, fixed tensors) go whole to each call."""
    return frozenset(spec.name for spec in specs if spec.batched)


def _padding_mask(spec: InputSpec, shape: tuple) -> np.ndarray:
    # Row i keeps a prefix of (i + 1) / rows of the sequence (at least one position): rows of different lengths.
    rows, length = shape[0], shape[-1]
    keep = np.maximum(1, np.round(length * np.arange(1, rows + 1) / rows)).reshape(-1, 1)
    return (np.arange(length).reshape(1, -1) < keep).astype(spec.dtype)


def _one_input(spec: InputSpec, low: float, high: float, batch: int, rng, distribution: str = "uniform"):
    dims = [OPEN_DIMENSION if dim is None else int(dim) for dim in spec.row_shape]
    shape = (batch, *dims) if spec.batched else tuple(dims)
    rows = shape[0] if shape else 1
    if spec.is_padding_mask and spec.batched:
        return _padding_mask(spec, shape)
    # Row i spans [low, low + (high - low) * (i + 1) / rows]: dark rows next to bright ones.
    brightness = (np.arange(1, rows + 1) / rows).reshape((-1,) + (1,) * (len(shape) - 1)) if shape else 1.0
    unit = rng.uniform(0.0, 1.0, size=shape) * brightness
    if spec.kind == "bool":
        return np.asarray(
            unit > 0.5 * brightness
        )  # an array even when 0-d: runtimes refuse numpy.bool scalars
    if spec.kind == "string":
        if spec.tokens:
            picks = np.asarray(np.floor(unit * len(spec.tokens)).astype("int64") % len(spec.tokens))
            return np.vectorize(lambda index: str(spec.tokens[index]).encode(), otypes=[object])(picks)
        numbers = np.asarray(np.round(low + (high - low) * unit).astype("int64"))
        return np.vectorize(lambda value: str(value).encode(), otypes=[object])(numbers)
    if spec.kind == "int" and spec.vocabulary:
        low, high = 0.0, float(spec.vocabulary - 1)
    if spec.kind == "float" and not shape:
        # A 0-d float is a parameter (a ratio, a temperature), not data: the unit interval at every magnitude.
        low, high, distribution = 0.0, 1.0, "uniform"
    values = low + (high - low) * unit
    if spec.kind == "float" and distribution == "normal":
        values = rng.standard_normal(size=shape) * brightness
    if spec.kind == "int":
        limits = np.iinfo(spec.dtype)
        values = np.clip(np.round(values), limits.min, limits.max)
    return np.asarray(values).astype(spec.dtype)


def probe_inputs(
    specs: list[InputSpec],
    low: float,
    high: float,
    batch: int = BATCH,
    seed: int = 0,
    distribution: str = "uniform",
) -> dict[str, np.ndarray]:
    """`{input name: array}`: `batch` rows per batched input, uniform within [low, high] per row brightness
    (`distribution="normal"`: standard normal floats, rows of different spread)."""
    rng = np.random.default_rng(seed)
    return {spec.name: _one_input(spec, low, high, batch, rng, distribution) for spec in specs}


def integer_range(specs: list[InputSpec], low: float, high: float) -> tuple[float, float]:
    """Integer-only models (token ids, uint8 pixels) declare no float range: use the dtype's sensible span."""
    if (low, high) != DEFAULT_RANGE or any(spec.kind == "float" for spec in specs):
        return low, high
    if any(spec.dtype == np.uint8 for spec in specs):
        return 0.0, 255.0
    return 0.0, 1.0


def batch_size(inputs: dict[str, np.ndarray], batched=None) -> int:
    """Rows of the batched inputs (`batched`: their names; default every input that is not 0-d)."""
    sizes = [
        len(value)
        for name, value in inputs.items()
        if np.ndim(value) and (batched is None or name in batched)
    ]
    return min(sizes) if sizes else 0


def row(inputs: dict[str, np.ndarray], index: int, batched=None) -> dict[str, np.ndarray]:
    return {
        name: value[index : index + 1] if np.ndim(value) and (batched is None or name in batched) else value
        for name, value in inputs.items()
    }


def keras_input_specs(model) -> list[InputSpec]:
    """One spec per model input; empty for a model that declares none (an unbuilt subclassed model)."""
    specs = []
    try:
        tensors = list(model.inputs or [])
    except (AttributeError, ValueError):
        return []
    vocabulary, tokens = keras_vocabulary(model)
    by_input = input_vocabularies(model)
    for tensor in tensors:
        dtype = object if str(tensor.dtype) == "string" else np.dtype(str(tensor.dtype))
        shape = tuple(tensor.shape)
        ids = by_input.get(tensor.name, vocabulary) if np.issubdtype(dtype, np.integer) else None
        specs.append(
            InputSpec(
                tensor.name,
                dtype,
                shape[1:],
                batched=bool(shape) and shape[0] is None,
                vocabulary=ids,
                tokens=tokens if dtype is object else None,
            )
        )
    return specs


def input_vocabularies(model) -> dict[str, int]:
    """`{input name: input_dim}` for inputs fed straight into an Embedding, in the model or a nested
    functional model (keras-hub backbones: `token_ids` -> token embedding, `segment_ids` -> 2 segments)."""
    import keras

    found = {}
    for layer in model._flatten_layers(include_self=True):
        try:
            tensors = list(layer.inputs or []) if isinstance(layer, keras.Model) else []
        except (AttributeError, ValueError):  # a subclassed model declares no inputs
            tensors = []
        for tensor in tensors:
            for consumer in layer.layers:
                if isinstance(consumer, keras.layers.Embedding) and any(
                    any(x is tensor for x in node.input_tensors) for node in consumer._inbound_nodes
                ):
                    found.setdefault(tensor.name, int(consumer.input_dim))
    return found


def keras_vocabulary(model) -> tuple[int | None, tuple | None]:
    """`(smallest Embedding input_dim, StringLookup tokens)`: token-id probes valid for every embedding,
    string probes from the lookup table (an out-of-vocabulary token is legal too, but proves less)."""
    import keras

    sizes, tokens = [], None
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Embedding) and getattr(layer, "input_dim", None):
            sizes.append(int(layer.input_dim))
        elif isinstance(layer, keras.layers.StringLookup) and tokens is None:
            try:
                vocabulary = [
                    token for token in layer.get_vocabulary() if token != layer.oov_token and token != ""
                ]
            except (AttributeError, ValueError, RuntimeError):
                vocabulary = []
            tokens = tuple(vocabulary) or None
    return (min(sizes) if sizes else None), tokens


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
    path = warmup_path(directory)
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
    values = [
        value.astype("float64").ravel()
        for inputs in requests
        for value in inputs.values()
        if value.dtype != object and value.size
    ]
    if not values:
        return None
    joined = np.concatenate(values)
    low, high = float(joined.min()), float(joined.max())
    return (low, high) if high > low else None
