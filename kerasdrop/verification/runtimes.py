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
        hint = (
            f"; found {', '.join(map(str, found))}: did you mean {found[0]}?"
            if found
            else "; it holds no .keras file"
        )
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
        raise UnusableInputError(
            f"{path} cannot be loaded as a Keras model: {text.splitlines()[0] if text else ''}"
        ) from None
    except Exception as error:  # zip, h5 and JSON errors of a corrupt file
        raise UnusableInputError(f"{path} cannot be loaded as a Keras model ({_first_line(error)})") from None


def call_keras(model, inputs: dict, training):
    """Calls `model` on `{input name: array}` in the model's own input structure."""
    import keras

    names = [tensor.name for tensor in model.inputs]
    # Probes named by a signature (e.g. `images`) rather than by Keras' input names: match by order.
    flat = [inputs[name] for name in names] if set(names) <= set(inputs) else list(inputs.values())
    structure = getattr(model, "_inputs_struct", None)
    packed = (
        flat[0]
        if len(flat) == 1 and not isinstance(structure, (list, tuple, dict))
        else keras.tree.pack_sequence_as(structure, flat)
    )
    return model(packed, training=training) if training is not None else model(packed)


def load_saved_model(directory: str | pathlib.Path):
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(directory))
    except Exception as error:
        raise UnusableInputError(
            f"{directory} cannot be loaded as a SavedModel: {_first_line(error)}"
        ) from None


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
                self.meta_graph = tf.compat.v1.saved_model.loader.load(
                    self.session, ["serve"], str(directory)
                )
        except Exception as error:
            self.session.close()
            raise UnusableInputError(
                f"{directory} cannot be loaded the way TF Serving loads it (TF1 SavedModel "
                f"loader, tag 'serve'): {_first_line(error)}"
            ) from None

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


_ONNX_TYPES = {
    "float": "float32",
    "double": "float64",
    "float16": "float16",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "string": "object",
}


def onnx_input_specs(session) -> list[InputSpec] | None:
    """Input specs of an ONNX Runtime session; None when an input is not a plain tensor."""
    specs = []
    for tensor in session.get_inputs():
        element = tensor.type.removeprefix("tensor(").removesuffix(")")
        if not tensor.type.startswith("tensor(") or element not in _ONNX_TYPES:
            return None
        dims = [dim if isinstance(dim, int) and dim >= 0 else None for dim in tensor.shape]
        batched = bool(dims) and dims[0] is None
        specs.append(
            InputSpec(
                tensor.name, np.dtype(_ONNX_TYPES[element]), tuple(dims[1:] if batched else dims), batched
            )
        )
    return specs


def onnx_runtime(session):
    names = [output.name for output in session.get_outputs()]

    def run(inputs):
        # ONNX Runtime takes string tensors as arrays of str, not bytes.
        inputs = {
            name: np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(value)
            if value.dtype == object
            else value
            for name, value in inputs.items()
        }
        return dict(zip(names, session.run(names, inputs)))

    return run


# --- LiteRT and OpenVINO: optional runtimes, each named with the package that provides it ------------

# `{format: (import name, pip requirement)}`: what `kerasdrop verify` tells a user to install when absent.
# The pip extras of the same names (pyproject.toml) install these exact packages.
OPTIONAL_RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert (pip install 'kerasdrop[litert]')"),
    "openvino": ("openvino", "openvino (pip install 'kerasdrop[openvino]')"),
}


class RuntimeMissingError(UnusableInputError):
    """The runtime that executes a format is not installed; the message names the package to install."""


def import_runtime(format_name: str):
    """Imports a format's runtime module, or raises RuntimeMissingError naming the package to install."""
    import importlib

    module, package = OPTIONAL_RUNTIMES[format_name]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise RuntimeMissingError(
            f"the {format_name} runtime is not installed ({_first_line(error)}): install {package}"
        ) from None


_LITERT_TYPES = {"float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"}


def litert_signature(path: str | pathlib.Path):
    """`(runner, [InputSpec])` of a `.tflite` file: its `serving_default` signature (else its first), or,
    for a file converted without signatures, its input and output tensors. Either resizes an open batch
    dimension to each call's rows."""
    interpreter_module = import_runtime("litert")
    try:
        interpreter = interpreter_module.Interpreter(model_path=str(path))
        signatures = interpreter.get_signature_list()
    except Exception as error:  # the LiteRT loader raises ValueError/RuntimeError on bad flatbuffers
        raise UnusableInputError(f"{path} cannot be loaded by LiteRT: {_first_line(error)}") from None
    if signatures:
        runner = interpreter.get_signature_runner(
            "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        )
        details = sorted(runner.get_input_details().items())
    else:
        runner = _TensorRunner(interpreter)
        details = [(detail["name"], detail) for detail in interpreter.get_input_details()]
    specs = []
    for name, detail in details:
        dtype = np.dtype(detail["dtype"])
        if dtype.name not in _LITERT_TYPES:
            return runner, None
        dims = [None if int(dim) < 0 else int(dim) for dim in detail["shape_signature"]]
        batched = bool(dims) and dims[0] is None
        specs.append(InputSpec(name, dtype, tuple(dims[1:] if batched else dims), batched))
    return runner, specs


class _TensorRunner:
    """Calls an interpreter without signatures by its input and output tensor names, as a signature runner."""

    def __init__(self, interpreter):
        self.interpreter = interpreter

    def __call__(self, **inputs):
        interpreter = self.interpreter
        details = {detail["name"]: detail for detail in interpreter.get_input_details()}
        for name, value in inputs.items():
            if tuple(details[name]["shape"]) != value.shape:
                interpreter.resize_tensor_input(details[name]["index"], value.shape)
        interpreter.allocate_tensors()
        for name, value in inputs.items():
            interpreter.set_tensor(details[name]["index"], value)
        interpreter.invoke()
        return {
            detail["name"]: interpreter.get_tensor(detail["index"])
            for detail in interpreter.get_output_details()
        }


def litert_runtime(runner):
    def run(inputs):
        # The runner's outputs are views of the interpreter's buffers, overwritten by the next call.
        return {key: np.array(value) for key, value in runner(**inputs).items()}

    return run


def openvino_output_name(port) -> str:
    """A port's readable name: among several tensor names (`Identity:0`, `probabilities`), a plain one."""
    names = sorted(port.get_names())
    plain = [name for name in names if ":" not in name and "/" not in name]
    return (plain or names or [port.get_any_name()])[0]


def openvino_compiled(path: str | pathlib.Path):
    """`(compiled model on CPU, [InputSpec])` of an OpenVINO IR `.xml` (its `.bin` beside it) or other file
    OpenVINO reads."""
    openvino = import_runtime("openvino")
    try:
        core = openvino.Core()
        # float32 as the file stores it: on CPUs with bf16 units OpenVINO's default inference precision is
        # bf16, which differs from the model by ~1e-4 and would hide nothing but blur every comparison.
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    except Exception as error:  # OpenVINO raises RuntimeError for unreadable IR, missing .bin, unknown ops
        raise UnusableInputError(f"{path} cannot be loaded by OpenVINO: {_first_line(error)}") from None
    specs = []
    for port in compiled.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic:
            return compiled, None
        dims = [None if dim.is_dynamic else dim.get_length() for dim in shape]
        batched = bool(dims) and dims[0] is None
        dtype = np.dtype(port.get_element_type().to_dtype())
        specs.append(
            InputSpec(openvino_output_name(port), dtype, tuple(dims[1:] if batched else dims), batched)
        )
    return compiled, specs


def openvino_runtime(compiled):
    names = [openvino_output_name(port) for port in compiled.outputs]
    inputs_by_name = {openvino_output_name(port): port for port in compiled.inputs}

    def run(inputs):
        results = compiled({inputs_by_name[name]: value for name, value in inputs.items()})
        return {name: np.array(results[port]) for name, port in zip(names, compiled.outputs)}

    return run
