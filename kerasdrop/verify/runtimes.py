"""Loading what is verified, and calling it the way it will be served: Keras, SavedModel, ONNX Runtime."""

from __future__ import annotations

import pathlib

import numpy as np

from kerasdrop.verify.report import UnusableInputError


def load_keras_model(path: str | pathlib.Path):
    """Loads a `.keras` file in safe mode; unusable files raise UnusableInputError with the reason."""
    import keras

    path = pathlib.Path(path)
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
        raise UnusableInputError(f"{path} cannot be loaded as a Keras model: {text}") from None
    except Exception as error:  # zip, h5 and JSON errors of a corrupt file
        raise UnusableInputError(f"{path} cannot be loaded as a Keras model ({type(error).__name__}: {error})") from None


def keras_runtime(model):
    import tensorflow as tf

    def run(images):
        probabilities = np.asarray(model(images, training=False))
        return {"probabilities": probabilities, "class_ids": np.asarray(tf.argmax(probabilities, axis=-1))}

    return run


def load_saved_model(directory: str | pathlib.Path):
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(directory))
    except Exception as error:
        raise UnusableInputError(f"{directory} cannot be loaded as a SavedModel: {type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''}") from None


def float_batch_input(signature) -> tuple[str, tuple] | None:
    """`(input name, per-row shape)` when a signature takes one float tensor with a leading batch dim."""
    _, inputs = signature.structured_input_signature
    if len(inputs) != 1:
        return None
    (name, spec), = inputs.items()
    if not spec.dtype.is_floating or spec.shape.rank is None or spec.shape.rank < 1 or spec.shape[0] is not None:
        return None
    return name, tuple(spec.shape[1:])


def saved_model_runtime(signature, input_name: str):
    import tensorflow as tf

    def run(images):
        outputs = signature(**{input_name: tf.constant(images)})
        return {key: value.numpy() for key, value in outputs.items()}

    return run


def onnx_session(path: str | pathlib.Path):
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        raise UnusableInputError(f"{path} cannot be loaded by ONNX Runtime: {error}") from None


def onnx_batch_input(session) -> tuple[str, tuple] | None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or "float" not in inputs[0].type:
        return None
    shape = inputs[0].shape
    if not shape or isinstance(shape[0], int):
        return None
    return inputs[0].name, tuple(dim if isinstance(dim, int) else None for dim in shape[1:])


def onnx_runtime(session, input_name: str):
    names = [output.name for output in session.get_outputs()]

    def run(images):
        return dict(zip(names, session.run(names, {input_name: images})))

    return run
