"""Faulty and clean artefacts of every class the verifier judges, built with public Keras/TF/ONNX APIs.

Each builder is independent of kerasdrop's own exporter, like the artefacts users bring.
"""

import keras
import numpy as np


def _head(inputs, x, name="model"):
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x), name=name)


# --- Keras: stochastic layers active under model(x) ----------------------------------------------


def dropout_in_sub_model_pinned():
    """`block(x, training=True)` where block is a Sequential holding Dropout."""
    block = keras.Sequential(
        [
            keras.layers.Dense(16, activation="relu", name="block_fc"),
            keras.layers.Dropout(0.5, name="block_dropout"),
        ],
        name="block",
    )
    inputs = keras.Input((8,), name="images")
    return _head(inputs, block(inputs, training=True))


def dropout_in_time_distributed_pinned():
    inputs = keras.Input((4, 8), name="images")
    x = keras.layers.TimeDistributed(keras.layers.Dropout(0.5, name="step_dropout"), name="steps")(
        inputs, training=True
    )
    return _head(inputs, x)


def rnn_dropout_in_bidirectional_pinned():
    inputs = keras.Input((4, 8), name="images")
    rnn = keras.layers.Bidirectional(
        keras.layers.GRU(8, dropout=0.5, recurrent_dropout=0.5, name="gru"), name="bi"
    )
    return _head(inputs, rnn(inputs, training=True))


def augmentation_at_default():
    inputs = keras.Input((8, 8, 1), name="images")
    x = keras.layers.RandomTranslation(0.3, 0.3, name="translate")(inputs)
    return _head(inputs, x)


def batch_statistics_only_at_pixel_range(first: str = "rescaling"):
    """BatchNorm on batch statistics after a threshold only raw pixels in 0..255 cross; the range is
    declared by a Rescaling(1/255) or a Normalization(mean 128, std 64) layer."""
    inputs = keras.Input((8,), name="images")
    x = (
        keras.layers.Rescaling(1 / 255, name="input_rescaling")(inputs)
        if first == "rescaling"
        else keras.layers.Normalization(mean=128.0, variance=64.0**2, name="input_normalization")(inputs)
    )
    x = keras.layers.ReLU(threshold=0.5, name="threshold")(x)
    x = keras.layers.BatchNormalization(name="bn")(x, training=True)
    return _head(inputs, x)


# --- Keras: clean ----------------------------------------------------------------------------------


def zero_rate_dropout_pinned():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    return _head(inputs, keras.layers.Dropout(0.0, name="fc1_dropout")(x, training=True))


def rnn_dropout_at_default():
    inputs = keras.Input((4, 8), name="images")
    x = keras.layers.Bidirectional(keras.layers.LSTM(8, dropout=0.5, recurrent_dropout=0.5), name="bi")(
        inputs
    )
    return _head(inputs, keras.layers.Dropout(0.5, name="fc_dropout")(x))


def two_inputs_int_and_float64(pinned: bool = False):
    """A float64 image batch and int64 token ids: clean, or with dropout pinned."""
    pixels = keras.Input((6,), dtype="float64", name="pixels")
    tokens = keras.Input((3,), dtype="int64", name="tokens")
    embedded = keras.layers.Flatten(name="flat")(keras.layers.Embedding(2, 4, name="embedding")(tokens))
    x = keras.layers.Concatenate(name="concat")([keras.layers.Dense(8, name="fc_pixels")(pixels), embedded])
    x = keras.layers.Dropout(0.5, name="fc_dropout")(x, training=True if pinned else None)
    return _head({"pixels": pixels, "tokens": tokens}, x, name="two_inputs")


def uint8_images():
    inputs = keras.Input((4, 4, 1), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255, name="input_rescaling")(inputs)
    return _head(inputs, keras.layers.Dropout(0.5, name="dropout")(x))


def string_input():
    inputs = keras.Input((2,), dtype="string", name="words")
    x = keras.layers.StringLookup(vocabulary=["1", "2", "3"], output_mode="multi_hot", name="lookup")(inputs)
    return _head(inputs, keras.layers.Dropout(0.5, name="dropout")(x))


# --- SavedModels written with tf.saved_model.save ------------------------------------------------


def save_module(module, directory, signatures):
    import tensorflow as tf

    tf.saved_model.save(module, str(directory), signatures=signatures)
    return directory


def _module_with_kernel(inputs: int = 8):
    import tensorflow as tf

    module = tf.Module()
    module.kernel = tf.Variable(np.random.default_rng(0).normal(size=(inputs, 3)).astype("float32"))
    module.counter = tf.Variable(tf.zeros([4]))
    module.seen = tf.Variable(tf.zeros([8]))
    return module


def saved_model(directory, kind: str):
    """One SavedModel per `kind` (see SAVED_MODEL_KINDS); serving_default takes `images` [None, 8]."""
    import tensorflow as tf

    module = _module_with_kernel()
    spec = [tf.TensorSpec([None, 8], tf.float32, name="images")]
    body = SAVED_MODEL_KINDS[kind]

    @tf.function(input_signature=spec)
    def serve(images):
        return {"probabilities": tf.nn.softmax(tf.matmul(body(module, images), module.kernel))}

    return save_module(module, directory, {"serving_default": serve})


def _fractional_pool(module, images):
    import tensorflow as tf

    pooled = tf.nn.fractional_max_pool(tf.reshape(images, [-1, 8, 1, 1]), [1, 1.5, 1, 1], seed=7)[0]
    return tf.image.resize(pooled, [8, 1])[:, :, 0, 0]


def _strided_slice_write(module, images):
    module.counter[0:1].assign(module.counter[0:1] + 1.0)  # ResourceStridedSliceAssign
    return images


def _scatter_write(module, images):
    import tensorflow as tf

    module.seen.scatter_add(tf.IndexedSlices(tf.reduce_sum(images, axis=0)[:2], tf.constant([0, 1])))
    return images


def _batch_centred_above_threshold(module, images):
    import tensorflow as tf

    bright = tf.nn.relu(images - 10.0)  # zero for inputs in [0, 1]: only real pixels reach the next op
    return images + bright - tf.reduce_mean(bright, axis=0)


SAVED_MODEL_KINDS = {
    "fractional_max_pool_with_seed": _fractional_pool,
    "strided_slice_assign": _strided_slice_write,
    "scatter_update": _scatter_write,
    "batch_dependent_above_threshold": _batch_centred_above_threshold,
    "clean": lambda module, images: images,
}


def write_file_saved_model(directory, written_path):
    """serving_default writes a file (tf.io.write_file) before answering."""
    import tensorflow as tf

    module = _module_with_kernel()

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
    def serve(images):
        with tf.control_dependencies(
            [tf.io.write_file(str(written_path), tf.strings.as_string(images[0, 0]))]
        ):
            return {"probabilities": tf.nn.softmax(tf.matmul(images, module.kernel))}

    return save_module(module, directory, {"serving_default": serve})


def random_extra_signature(directory):
    """serving_default is clean; a second signature samples noise (not mc_dropout)."""
    import tensorflow as tf

    module = _module_with_kernel()
    spec = [tf.TensorSpec([None, 8], tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def serve(images):
        return {"probabilities": tf.nn.softmax(tf.matmul(images, module.kernel))}

    @tf.function(input_signature=spec)
    def noisy(images):
        return {
            "probabilities": tf.nn.softmax(
                tf.matmul(images + tf.random.normal(tf.shape(images)), module.kernel)
            )
        }

    return save_module(module, directory, {"serving_default": serve, "noisy": noisy})


def mc_dropout_updating_statistics(directory):
    """mc_dropout is random, but also moves the statistic serving_default normalises with."""
    import tensorflow as tf

    module = _module_with_kernel()
    module.moving_mean = tf.Variable(tf.zeros([8]))
    spec = [tf.TensorSpec([None, 8], tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def serve(images):
        return {"probabilities": tf.nn.softmax(tf.matmul(images - module.moving_mean, module.kernel))}

    @tf.function(input_signature=spec)
    def mc_dropout(images):
        module.moving_mean.assign(0.9 * module.moving_mean + 0.1 * tf.reduce_mean(images, axis=0))
        dropped = tf.nn.dropout(images - module.moving_mean, 0.5)
        return {"mean": tf.nn.softmax(tf.matmul(dropped, module.kernel))}

    return save_module(module, directory, {"serving_default": serve, "mc_dropout": mc_dropout})


def mixed_dtypes_saved_model(directory):
    """Clean: float64 and int64 inputs; float, int64 and string outputs."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = tf.Variable(np.linspace(-1, 1, 4), dtype=tf.float64)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4], tf.float64, name="measurements"),
            tf.TensorSpec([None], tf.int64, name="bucket"),
        ]
    )
    def serve(measurements, bucket):
        score = tf.reduce_sum(measurements * module.weights, axis=1) + tf.cast(bucket, tf.float64)
        label = tf.cast(score > 0, tf.int64)
        return {"score": score, "label": label, "name": tf.gather(tf.constant(["low", "high"]), label)}

    return save_module(module, directory, {"serving_default": serve})


def warmup_file(directory, images):
    """`assets.extra/tf_serving_warmup_requests` with one predict request carrying `images`."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    path = directory / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        writer.write(log.SerializeToString())


# --- ONNX ---------------------------------------------------------------------------------------------


def _onnx_save(path, nodes, inputs, outputs, initializers=(), functions=()):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "artefact", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=list(functions),
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_random_in_local_function(path):
    """The main graph calls `local.Noisy`, a model-local function that adds RandomUniformLike noise."""
    from onnx import TensorProto, helper

    function = helper.make_function(
        "local",
        "Noisy",
        ["x"],
        ["y"],
        [
            helper.make_node("RandomUniformLike", ["x"], ["noise"]),
            helper.make_node("Add", ["x", "noise"], ["y"]),
        ],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    nodes = [
        helper.make_node("Noisy", ["images"], ["noisy"], domain="local", name="noisy"),
        helper.make_node("Softmax", ["noisy"], ["probabilities"], name="softmax", axis=-1),
    ]
    return _onnx_save(
        path,
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 8])],
        functions=[function],
    )


def onnx_random_in_if_branch(path):
    from onnx import TensorProto, helper, numpy_helper

    def branch(name, random):
        op = (
            helper.make_node("RandomNormalLike", ["images"], [f"{name}_out"])
            if random
            else helper.make_node("Identity", ["images"], [f"{name}_out"])
        )
        return helper.make_graph(
            [op], name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, ["batch", 8])]
        )

    nodes = [
        helper.make_node(
            "If",
            ["flag"],
            ["chosen"],
            name="branch",
            then_branch=branch("then", True),
            else_branch=branch("else", False),
        ),
        helper.make_node("Softmax", ["chosen"], ["probabilities"], name="softmax", axis=-1),
    ]
    return _onnx_save(
        path,
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 8])],
        initializers=[numpy_helper.from_array(np.array(True), "flag")],
    )


def onnx_dropout_with_folded_training_mode(path, folds_to: bool):
    """Dropout whose training_mode is computed from constants: Identity(false), or Equal(1, 1) (true)."""
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.array(1.0, dtype="float32"))
    fold = (
        [
            helper.make_node("Constant", [], ["one"], value=one),
            helper.make_node("Equal", ["one", "one"], ["training_mode"], name="fold"),
        ]
        if folds_to
        else [
            helper.make_node("Constant", [], ["false"], value=numpy_helper.from_array(np.array(False))),
            helper.make_node("Identity", ["false"], ["training_mode"], name="fold"),
        ]
    )
    nodes = fold + [
        helper.make_node("Dropout", ["images", "ratio", "training_mode"], ["dropped"], name="dropout"),
        helper.make_node("Softmax", ["dropped"], ["probabilities"], name="softmax", axis=-1),
    ]
    return _onnx_save(
        path,
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 8])],
        initializers=[numpy_helper.from_array(np.array(0.5, dtype="float32"), "ratio")],
    )


def onnx_two_inputs_double_and_int64(path):
    """Clean: float64 features and int64 ids in; a float64 score and an int64 label out."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["ids"], ["ids_double"], to=TensorProto.DOUBLE),
        helper.make_node("Add", ["features", "ids_double"], ["score"], name="add"),
        helper.make_node("ArgMax", ["score"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    return _onnx_save(
        path,
        nodes,
        [
            helper.make_tensor_value_info("features", TensorProto.DOUBLE, ["batch", 3]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3]),
        ],
        [
            helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["batch", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
    )


def onnx_string_in_and_out(path):
    """Clean: a string tensor in, the same strings out (compared exactly)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["words"], ["echo"], name="echo")]
    return _onnx_save(
        path,
        nodes,
        [helper.make_tensor_value_info("words", TensorProto.STRING, ["batch", 2])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch", 2])],
    )
