"""Loading what is verified, and calling it the way it will be served.

Keras; the TF2 SavedModel loader; TF Serving's own path (the TF1 SavedModel loader into a graph and
a Session, signatures run by their TensorInfo names); ONNX Runtime. Every runner takes and returns
`{name: array}`.
"""

from __future__ import annotations

import pathlib

import numpy as np

from kerasdrop.verification.probes import InputSpec
from kerasdrop.verification.report import UnusableInputError


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


def load_keras_model(path: str | pathlib.Path):
    """Loads a `.keras` file in safe mode; unusable files raise UnusableInputError with the reason."""
    import keras

    path = pathlib.Path(path)
    if path.is_dir():  # a run directory, most often: name the .keras files it holds
        found = sorted(path.glob("*.keras"), key=lambda file: (file.name != "model.keras", file.name))
        hint = (f"; found {', '.join(map(str, found))}: did you mean {found[0]}?" if found
                else "; it holds no .keras file")
        raise UnusableInputError(f"Expected a .keras file; {path} is a directory{hint}")
    if not path.is_file():
        raise UnusableInputError(f"Model file not found: {path}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as error:
        text = str(error)
        if "Lambda" in text or "safe_mode" in text:
            raise UnusableInputError(
                f"{path} contains a Lambda layer (arbitrary Python code), which Keras safe_mode refuses to load. "
                "Rebuild the model with built-in layers or a registered custom layer instead of Lambda."
            ) from None
        raise UnusableInputError(f"{path} cannot be loaded as a Keras model: {text.splitlines()[0] if text else ''}") \
            from None
    except Exception as error:  # zip, h5 and JSON errors of a corrupt file
        raise UnusableInputError(f"{path} cannot be loaded as a Keras model ({_first_line(error)})") from None


def call_keras(model, inputs: dict, training):
    """Calls `model` on `{input name: array}` in the model's own input structure."""
    import keras

    names = [tensor.name for tensor in model.inputs]
    # Probes named by a signature (e.g. `images`) rather than by Keras' input names: match by order.
    flat = [inputs[name] for name in names] if set(names) <= set(inputs) else list(inputs.values())
    structure = getattr(model, "_inputs_struct", None)
    packed = flat[0] if len(flat) == 1 and not isinstance(structure, (list, tuple, dict)) else \
        keras.tree.pack_sequence_as(structure, flat)
    return model(packed, training=training) if training is not None else model(packed)


def load_saved_model(directory: str | pathlib.Path):
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(directory))
    except Exception as error:
        raise UnusableInputError(f"{directory} cannot be loaded as a SavedModel: {_first_line(error)}") from None


def _numpy_dtype(tf_dtype) -> np.dtype:
    return np.dtype(object) if tf_dtype.name == "string" else np.dtype(tf_dtype.as_numpy_dtype)


def signature_def_specs(signature_def) -> list[InputSpec] | None:
    """Input specs from a SignatureDef's TensorInfo (what TF Serving reads); None for sparse inputs.

    An input of unknown rank is probed as a batch of scalars (serialized tf.Examples are).
    """
    import tensorflow as tf

    specs = []
    for key, info in sorted(signature_def.inputs.items()):
        if info.WhichOneof("encoding") != "name":
            return None
        if info.tensor_shape.unknown_rank:
            specs.append(InputSpec(key, _numpy_dtype(tf.dtypes.as_dtype(info.dtype)), ()))
            continue
        dims = [None if dim.size < 0 else dim.size for dim in info.tensor_shape.dim]
        dtype = tf.dtypes.as_dtype(info.dtype)
        batched = bool(dims) and dims[0] is None
        specs.append(InputSpec(key, _numpy_dtype(dtype), tuple(dims[1:] if batched else dims), batched))
    return specs


def tf2_signature_runtime(signature):
    import tensorflow as tf

    _, declared = signature.structured_input_signature

    def run(inputs):
        tensors = {name: tf.constant(value, dtype=declared[name].dtype) for name, value in inputs.items()}
        return {key: value.numpy() for key, value in signature(**tensors).items()}

    return run


class SessionRuntime:
    """TF Serving's load path: `tf.compat.v1` SavedModel loader, `Session.run` on TensorInfo names."""

    def __init__(self, directory: pathlib.Path):
        import tensorflow as tf
        from tensorflow.python.util import deprecation

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        try:
            # The TF1 loader is deprecated for new code; here it is the point: TF Serving loads this way.
            with self.graph.as_default(), deprecation.silence():
                self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(directory))
        except Exception as error:
            self.session.close()
            raise UnusableInputError(f"{directory} cannot be loaded the way TF Serving loads it (TF1 SavedModel "
                                     f"loader, tag 'serve'): {_first_line(error)}") from None

    def runner(self, signature_name: str):
        signature = self.meta_graph.signature_def[signature_name]
        fetches = {key: info.name for key, info in signature.outputs.items()}
        feeds = {key: info.name for key, info in signature.inputs.items()}

        def run(inputs):
            return self.session.run(fetches, feed_dict={feeds[key]: value for key, value in inputs.items()})

        return run

    def close(self) -> None:
        self.session.close()


def onnx_session(path: str | pathlib.Path):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise UnusableInputError(f"{path} cannot be loaded by ONNX Runtime: {_first_line(error)}") from None


_ONNX_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
               "int16": "int16", "int8": "int8", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
               "uint64": "uint64", "bool": "bool", "string": "object"}


def onnx_input_specs(session) -> list[InputSpec] | None:
    """Input specs of an ONNX Runtime session; None when an input is not a plain tensor."""
    specs = []
    for tensor in session.get_inputs():
        element = tensor.type.removeprefix("tensor(").removesuffix(")")
        if not tensor.type.startswith("tensor(") or element not in _ONNX_TYPES:
            return None
        dims = [dim if isinstance(dim, int) and dim >= 0 else None for dim in tensor.shape]
        batched = bool(dims) and dims[0] is None
        specs.append(InputSpec(tensor.name, np.dtype(_ONNX_TYPES[element]), tuple(dims[1:] if batched else dims),
                               batched))
    return specs


def onnx_runtime(session):
    names = [output.name for output in session.get_outputs()]

    def run(inputs):
        # ONNX Runtime takes string tensors as arrays of str, not bytes.
        inputs = {name: np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(value)
                  if value.dtype == object else value for name, value in inputs.items()}
        return dict(zip(names, session.run(names, inputs)))

    return run
