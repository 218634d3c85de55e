"""LiteRT and OpenVINO files as other producers write them, clean and broken, built here (never downloaded):
Keras's own `model.export(format=...)`, `tf.lite.TFLiteConverter` from a SavedModel or a concrete
function, `openvino.convert_model` from a SavedModel or an ONNX file.

The broken kinds: `uniform` (tf.random.uniform masks the hidden units: live dropout as a random op),
`dropout` (a Keras Dropout layer called with training=True), `batch_norm` (BatchNormalization called
with training=True: batch statistics, and a moving-statistics update).
"""

from __future__ import annotations

import pathlib

import keras
import numpy as np

KINDS = ("clean", "uniform", "dropout", "batch_norm")


def small_classifier():
    """images (8 floats in [0, 1]) -> fc1 -> bn -> fc1_dropout -> 3-way softmax, seeded weights."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, name="fc1_dropout")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    bn = model.get_layer("bn")  # moving statistics away from (0, 1), so batch statistics differ from them
    bn.moving_mean.assign(np.full(16, 0.3, "float32"))
    bn.moving_variance.assign(np.full(16, 0.5, "float32"))
    return model


def serving_function(model, kind: str):
    """A tf.function `images -> {probabilities}` that calls the model's layers, broken as `kind` says."""
    import tensorflow as tf

    layer = model.get_layer

    def serve(images):
        hidden = layer("fc1")(images)
        hidden = layer("bn")(hidden, training=kind == "batch_norm")
        if kind == "dropout":
            hidden = layer("fc1_dropout")(hidden, training=True)
        if kind == "uniform":
            hidden = hidden * tf.cast(tf.random.uniform(tf.shape(hidden)) > 0.5, hidden.dtype) * 2.0
        return {"probabilities": layer("predictions")(hidden)}

    return tf.function(serve, input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])


def tracked(model):
    """A tf.Module holding the model's TF variables (Keras 3 wraps each tf.Variable; the converters freeze
    only those a trackable object holds, else the .tflite keeps VAR_HANDLEs that are never set: NaN)."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model
    module.seed_state = model.get_layer("fc1_dropout").seed_generator.state
    module.tf_variables = [variable.value for variable in model.variables]
    return module


def saved_model(model, kind: str, directory: pathlib.Path) -> pathlib.Path:
    """`tf.saved_model.save` of `serving_function` as serving_default (once per directory)."""
    import tensorflow as tf

    if (directory / "saved_model.pb").is_file():
        return directory
    module = tracked(model)
    function = serving_function(model, kind)
    module.serve = function
    tf.saved_model.save(
        module, str(directory), signatures={"serving_default": function.get_concrete_function()}
    )
    return directory


def tflite_from_saved_model(model, kind: str, directory: pathlib.Path, *, select_tf_ops: bool = False):
    import tensorflow as tf

    source = saved_model(model, kind, directory / f"{kind}_saved_model")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
    if select_tf_ops:  # Keras's dropout draws with stateless TF ops TFLite has no builtin for
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = directory / f"{kind}_from_saved_model.tflite"
    path.write_bytes(converter.convert())
    return path


def tflite_from_concrete_function(model, kind: str, directory: pathlib.Path):
    import tensorflow as tf

    function = serving_function(model, kind).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], tracked(model))
    path = directory / f"{kind}_from_concrete_function.tflite"
    path.write_bytes(converter.convert())
    return path


def openvino_from_saved_model(model, kind: str, directory: pathlib.Path):
    import openvino

    source = saved_model(model, kind, directory / f"{kind}_saved_model")
    path = directory / f"{kind}_from_saved_model.xml"
    openvino.save_model(openvino.convert_model(str(source)), str(path), compress_to_fp16=False)
    return path


def openvino_from_onnx(model, kind: str, directory: pathlib.Path):
    import openvino
    import tensorflow as tf
    import tf2onnx

    function = serving_function(model, kind)
    onnx_path = directory / f"{kind}.onnx"
    tf2onnx.convert.from_function(
        function,
        input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")],
        opset=17,
        output_path=str(onnx_path),
    )
    path = directory / f"{kind}_from_onnx.xml"
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
    return path


def keras_export(model, fmt: str, directory: pathlib.Path):
    """Keras 3's own `model.export(path, format=fmt)` (`litert` or `openvino`)."""
    path = directory / ("keras.tflite" if fmt == "litert" else "keras.xml")
    model.export(str(path), format=fmt, verbose=False)
    return path
