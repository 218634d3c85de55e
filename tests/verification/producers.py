"""Artefacts as users bring them, written by other producers, each clean and broken, built here (never
downloaded): tf-keras (Keras 2) SavedModels, keras.applications backbones with a head, keras-hub
backbones from small configs, and the ONNX backend test suite's own node models.
"""

import os

import keras
import pytest

# The packages some producers need; all are in the `dev` extra, so CI has them.
PRODUCER_PACKAGES = {"tf_keras": "tf-keras", "keras_hub": "keras-hub", "onnx.backend.test": "onnx"}


def require(module: str):
    """Imports a producer's package: skipped with the reason where it is absent, a failure under CI."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        reason = (
            f"{PRODUCER_PACKAGES.get(module, module)} is not installed ({error}): pip install -e '.[dev]'"
        )
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"{reason} (CI=true: every producer must be tested in CI)", pytrace=False)
        pytest.skip(reason)


# --- tf-keras (Keras 2) ------------------------------------------------------------------------------


def legacy_keras_model(kind: str):
    """A tf-keras functional classifier: `clean`, `dropout_pinned` or `batch_norm_pinned`."""
    tf_keras = require("tf_keras")
    inputs = tf_keras.Input((8,), name="images")
    x = tf_keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    if kind == "batch_norm_pinned":
        x = tf_keras.layers.BatchNormalization(name="fc1_bn")(x, training=True)
    x = tf_keras.layers.Dropout(0.5, name="fc1_dropout")(
        x, training=True if kind == "dropout_pinned" else None
    )
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs)


# --- keras.applications backbones with a head ---------------------------------------------------------


def _efficientnet(shape):
    # EfficientNet's own builder at a quarter of B0's width and half its depth: three residual blocks
    # keep their stochastic-depth Dropout(noise_shape=(None, 1, 1, 1)); B0 itself takes ~40 s here.
    from keras.src.applications import efficientnet

    return efficientnet.EfficientNet(
        0.25,
        0.5,
        shape[0],
        drop_connect_rate=0.4,
        include_top=False,
        weights=None,
        input_shape=shape,
        name="efficientnet_small",
    )


def _densenet(shape):
    from keras.src.applications import densenet

    return densenet.DenseNet(
        [1, 1, 1, 1], include_top=False, weights=None, input_shape=shape, name="densenet_small"
    )


def _convnext(shape):
    # ConvNeXt's builder with stochastic depth on (ConvNeXtTiny fixes drop_path_rate=0): its
    # StochasticDepth draws unseeded random numbers and its branches start scaled by 1e-6.
    from keras.src.applications import convnext

    return convnext.ConvNeXt(
        [1, 1, 2, 1],
        [8, 16, 32, 64],
        drop_path_rate=0.3,
        default_size=shape[0],
        include_top=False,
        weights=None,
        input_shape=shape,
        name="convnext_small",
    )


# Each family's own keras.applications builder; all but MobileNetV3Small at a small config (the
# public B0/121/Tiny entry points build the same graphs, 5-30x larger, too slow for a unit test).
APPLICATIONS = {
    "MobileNetV3Small": lambda shape: keras.applications.MobileNetV3Small(
        input_shape=shape, include_top=False, weights=None
    ),
    "EfficientNet": _efficientnet,
    "DenseNet": _densenet,
    "ConvNeXt": _convnext,
}
# Backbones without preprocessing layers get the user's own Rescaling, as their documentation asks.
_NEEDS_RESCALING = ("DenseNet",)


def application_classifier(
    name: str, *, frozen: bool = False, backbone_training=None, head_pinned: bool = False, side: int = 32
):
    """`name` backbone (weights=None) + pooling + Dropout + softmax Dense, the transfer-learning recipe.

    `frozen`: `backbone.trainable = False`; `backbone_training`: the flag the backbone is called with;
    `head_pinned`: the head's Dropout called with training=True.
    """
    shape = (side, side, 3)
    backbone = APPLICATIONS[name](shape)
    backbone.trainable = not frozen
    inputs = keras.Input(shape, name="images")
    x = (
        keras.layers.Rescaling(1 / 255, name="input_rescaling")(inputs)
        if name in _NEEDS_RESCALING
        else inputs
    )
    x = backbone(x, training=backbone_training) if backbone_training is not None else backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.5, name="fc_dropout")(x, training=True if head_pinned else None)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{name.lower()}_classifier")


def call_once(model):
    """Calls `model` on one zero batch (Keras' ONNX export refuses a model never called)."""
    import numpy as np

    return model(np.zeros((1, *model.input_shape[1:]), dtype="float32"))


# --- keras-hub backbones from small configs ------------------------------------------------------------


def hub_classifier(*, backbone_training=None):
    """A two-layer GPT-2 backbone (token_ids + padding_mask inputs) with a Dropout + softmax head."""
    keras_hub = require("keras_hub")
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=40,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        dropout=0.1,
    )
    inputs = {
        tensor.name: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
        for tensor in backbone.inputs
    }
    sequence = (
        backbone(inputs, training=backbone_training) if backbone_training is not None else backbone(inputs)
    )
    x = keras.layers.GlobalAveragePooling1D(name="pool")(sequence)
    x = keras.layers.Dropout(0.5, name="fc_dropout")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="gpt2_classifier")


# --- ONNX's backend test suite ---------------------------------------------------------------------------

# Node models from onnx.backend.test.case.node, by expected verdict. Inference mode: Dropout without
# training_mode (or opset < 12, no such input), BatchNormalization's default. Training mode or random:
# training_mode a graph input, BatchNormalization training_mode=1, Bernoulli (also with a seed).
ONNX_BACKEND_CLEAN = (
    "test_dropout_default",
    "test_dropout_default_ratio",
    "test_dropout_default_mask",
    "test_dropout_default_mask_ratio",
    "test_dropout_default_old",
    "test_dropout_random_old",
    "test_batchnorm_example",
    "test_batchnorm_epsilon",
    "test_relu",
    "test_softmax_example",
)
ONNX_BACKEND_BROKEN = (
    "test_training_dropout",
    "test_training_dropout_default",
    "test_training_dropout_mask",
    "test_training_dropout_zero_ratio",
    "test_batchnorm_example_training_mode",
    "test_batchnorm_epsilon_training_mode",
    "test_bernoulli",
    "test_bernoulli_seed",
    "test_bernoulli_expanded",
)


def onnx_backend_models() -> dict:
    """`{name: ModelProto}` of the node test cases above, generated by the installed onnx package."""
    cases = require("onnx.backend.test.case.node")
    wanted = set(ONNX_BACKEND_CLEAN + ONNX_BACKEND_BROKEN)
    return {case.name: case.model for case in cases.collect_testcases(None) if case.name in wanted}


# --- models that saturate far outside their operating range ----------------------------------------------

SATURATION_THRESHOLD = (
    5000.0  # 0.8 * |row mean| only the large (+-1e4) probes' darkest rows reach; 0..255: <= 204
)


def saturating_pair(images):
    """Two logits tied in exact arithmetic, `sum(x) * c` against `sum(x * c)` (c = 0.8 / features), each
    rounding differently, swapped for a batch of one as oneDNN picks another kernel by batch size.
    Zero unless 0.8 * |row mean| passes SATURATION_THRESHOLD; beyond it a gain saturates the softmax,
    so float noise flips those rows' class between alone and in a batch."""
    import tensorflow as tf

    features = 1
    for dimension in images.shape[1:]:  # static: every input here has a fixed row shape
        features *= int(dimension)
    flat = tf.reshape(images, [-1, features])
    scale = 0.8 / features
    after, before = tf.reduce_sum(flat, axis=1) * scale, tf.reduce_sum(flat * scale, axis=1)
    single = tf.equal(tf.shape(images)[0], 1)
    first, second = tf.cond(single, lambda: (before, after), lambda: (after, before))
    return 1e5 * tf.nn.relu(tf.abs(tf.stack([first, second], axis=1)) - SATURATION_THRESHOLD)


def _saturating_outputs(images, kernel, kind: str):
    """Softmax probabilities of `images @ kernel` plus what `kind` adds beyond the operating range:
    `noise`, the `saturating_pair` classes; `batch_statistics`, every row shifted by the batch mean
    of what passes the threshold."""
    import tensorflow as tf

    if kind == "batch_statistics":
        bright = tf.nn.relu(tf.abs(images) - SATURATION_THRESHOLD)
        centred = images + bright - tf.reduce_mean(bright, axis=0)
        return tf.nn.softmax(tf.matmul(centred, kernel * 1e-4))
    return tf.nn.softmax(tf.concat([tf.matmul(images, kernel), saturating_pair(images)], axis=1))


def saturating_module_saved_model(directory, kind: str = "noise"):
    """A plain tf.Module SavedModel (no Keras) that saturates on large inputs; `kind` as `_saturating_outputs`."""
    import numpy as np
    import tensorflow as tf

    class Saturating(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(8, 3)).astype("float32") * 0.01)

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
        def serve(self, images):
            return {"probabilities": _saturating_outputs(images, self.kernel, kind)}

    module = Saturating()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def saturating_legacy_keras_saved_model(directory, kind: str = "noise"):
    """The same outputs from a tf-keras (Keras 2) functional model, saved by its `model.save` as a SavedModel."""
    import numpy as np

    tf_keras = require("tf_keras")
    kernel = np.random.default_rng(0).normal(size=(8, 3)).astype("float32") * 0.01
    inputs = tf_keras.Input((8,), name="images")
    outputs = tf_keras.layers.Lambda(
        lambda images: _saturating_outputs(images, kernel, kind), name="probabilities"
    )(inputs)
    tf_keras.Model(inputs, outputs).save(str(directory))
    return directory


def saturating_application_classifier():
    """MobileNetV3Small (its own builder, own Rescaling, frozen) + a Dense head, beside `saturating_pair`
    on the raw images: a keras.applications classifier whose softmax saturates and flips on float
    noise at the large probes only."""
    backbone = APPLICATIONS["MobileNetV3Small"]((32, 32, 3))
    backbone.trainable = False
    inputs = keras.Input((32, 32, 3), name="images")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    x = keras.layers.Dropout(0.5, name="fc_dropout")(x)
    logits = keras.layers.Dense(3, name="fc_logits")(x)
    pair = keras.layers.Lambda(saturating_pair, output_shape=(2,), name="saturating_pair")(inputs)
    joined = keras.layers.Concatenate(name="logits")([logits, pair])
    return keras.Model(inputs, keras.layers.Softmax(name="predictions")(joined), name="saturating_mobilenet")
