"""Deliberately broken models: each way randomness or batch statistics can leak into inference."""

import keras
import numpy as np


def _head(inputs, x):
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))


def dropout_pinned_to_training():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dropout(0.5, name="fc1_dropout")(x, training=True)
    return _head(inputs, x)


def gaussian_noise_pinned_to_training():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = keras.layers.GaussianNoise(0.5, name="noise")(x, training=True)
    return _head(inputs, x)


def batch_norm_pinned_to_training():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(32, name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="fc1_bn")(x, training=True)
    return _head(inputs, x)


def augmentation_inside():
    inputs = keras.Input((8, 8, 1), name="images")
    x = keras.layers.RandomFlip("horizontal", name="flip")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    return _head(inputs, x)


class AlwaysDropout(keras.layers.Layer):
    """A custom layer that ignores `training`: dropout on every call."""

    def __init__(self, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(1)

    def call(self, inputs):
        return keras.random.dropout(inputs, self.rate, seed=self.seed_generator)


def custom_layer_always_dropping():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    x = AlwaysDropout(name="always_dropout")(x)
    return _head(inputs, x)


KERAS_CASES = {
    "dropout_pinned_to_training": dropout_pinned_to_training,
    "gaussian_noise_pinned_to_training": gaussian_noise_pinned_to_training,
    "batch_norm_pinned_to_training": batch_norm_pinned_to_training,
    "custom_layer_always_dropping": custom_layer_always_dropping,
}


def fixed_mask_saved_model(directory):
    """A SavedModel whose serving function zeroes units with a stateless op and a fixed seed.

    Repeat calls agree (the seed never advances), so only the graph scan can catch it.
    """
    import tensorflow as tf

    class FixedMask(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
        def serve(self, images):
            mask = tf.cast(tf.random.stateless_uniform([8], seed=[1, 2]) > 0.5, tf.float32)
            return {"probabilities": tf.nn.softmax(tf.matmul(images * mask, self.kernel))}

    module = FixedMask()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})


def onnx_model(path, *, dropout_training_mode=None, random_op=False):
    """A small ONNX graph: images -> MatMul -> [Dropout] [+ RandomUniformLike] -> Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), "weight")
    nodes = [helper.make_node("MatMul", ["images", "weight"], ["logits"], name="matmul")]
    initializers = [weight]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])]
    current = "logits"
    if dropout_training_mode is not None:
        initializers.append(numpy_helper.from_array(np.array(0.5, dtype="float32"), "ratio"))
        if dropout_training_mode == "input":
            inputs.append(helper.make_tensor_value_info("training_mode", TensorProto.BOOL, []))
        else:
            initializers.append(numpy_helper.from_array(np.array(dropout_training_mode), "training_mode"))
        nodes.append(
            helper.make_node("Dropout", [current, "ratio", "training_mode"], ["dropped"], name="dropout")
        )
        current = "dropped"
    if random_op:
        nodes.append(
            helper.make_node("RandomUniformLike", [current], ["noise"], name="noise", dtype=TensorProto.FLOAT)
        )
        nodes.append(helper.make_node("Add", [current, "noise"], ["noisy"], name="add_noise"))
        current = "noisy"
    nodes.append(helper.make_node("Softmax", [current], ["probabilities"], name="softmax", axis=-1))
    graph = helper.make_graph(
        nodes,
        "broken",
        inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
