"""Probes for every input kind: 0-d scalars, booleans, vocabulary ids, lookup tokens, padding masks,
inputs of different ranks, and several magnitudes where no input range is declared."""

import keras
import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.verification import probes, verify
from tests.verification import broken_models


def _errors(report, check=None):
    return [f for f in report.errors if check is None or f.check == check]


def _onnx(path, nodes, inputs, initializers=()):
    import onnx
    from onnx import TensorProto, helper

    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])]
    graph = helper.make_graph(nodes, "inputs", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_with_scalar_temperature(path):
    """images [batch, 8] and a 0-d float `temperature`: softmax(images @ W / temperature)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), "weight")
    nodes = [
        helper.make_node("MatMul", ["images", "weight"], ["logits"]),
        helper.make_node("Div", ["logits", "temperature"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probabilities"], axis=-1),
    ]
    inputs = [
        helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8]),
        helper.make_tensor_value_info("temperature", TensorProto.FLOAT, []),
    ]
    return _onnx(path, nodes, inputs, [weight])


def onnx_rescaled_by_batch_maximum(path):
    """`x / max(1, max(batch))`: batch dependent only when some value in the batch exceeds 1."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), "weight")
    one = numpy_helper.from_array(np.array(1.0, dtype="float32"), "one")
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["batch_max"], keepdims=0),
        helper.make_node("Max", ["one", "batch_max"], ["divisor"]),
        helper.make_node("Div", ["images", "divisor"], ["rescaled"]),
        helper.make_node("MatMul", ["rescaled", "weight"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])]
    return _onnx(path, nodes, inputs, [weight, one])


def test_scalar_boolean_graph_input_is_probed_and_the_graph_still_refuses(tmp_path, capsys):
    path = tmp_path / "model.onnx"
    broken_models.onnx_model(path, dropout_training_mode="input")
    report = verify(path)
    assert any("training_mode a runtime input" in f.message for f in _errors(report, "graph"))
    ran = [
        f.message
        for f in report.findings
        if f.check == "numerical" and f.location == "onnxruntime model.onnx"
    ]
    assert any("repeatable" in m for m in ran) and any("batch independent" in m for m in ran), (
        report.to_json()
    )
    assert main(["verify", str(path)]) == 1  # a verdict, not "could not verify" (2)


def test_scalar_float_input_is_passed_whole_to_every_row(tmp_path):
    report = verify(onnx_with_scalar_temperature(tmp_path / "model.onnx"))
    assert report.ok, report.to_json()
    assert any(
        "batch independent: each row alone matches it in a batch of 6" in f.message for f in report.findings
    )


def test_scalar_input_of_a_saved_model_is_probed(tmp_path):
    import tensorflow as tf

    class Scaled(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32), tf.TensorSpec([], tf.float32)])
        def serve(self, images, temperature):
            return {"probabilities": tf.nn.softmax(tf.matmul(images, self.kernel) / temperature)}

    module = Scaled()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    report = verify(tmp_path / "sm")
    assert report.ok, report.to_json()
    assert any(
        "batch independent" in f.message for f in report.findings if f.location == "signature serving_default"
    )


def test_batch_maximum_rescaling_is_caught_without_a_declared_range(tmp_path, capsys):
    path = onnx_rescaled_by_batch_maximum(tmp_path / "model.onnx")
    report = verify(path)
    assert any("batch dependent" in f.message for f in _errors(report, "numerical")), report.to_json()
    # The unit interval alone, as the probes were before several magnitudes, cannot show it.
    assert verify(path, probe_range=(0.0, 1.0)).ok
    assert main(["verify", str(path)]) == 1


def test_batch_maximum_rescaling_in_keras_is_caught_at_pixel_magnitude():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Lambda(lambda t: t / keras.ops.maximum(1.0, keras.ops.max(t)), name="batch_rescale")(
        inputs
    )
    report = verify(keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x)))
    assert any("[0..255 pixels probes]" in f.location for f in _errors(report, "numerical")), report.to_json()


def test_undeclared_range_probes_span_every_magnitude():
    spec = probes.InputSpec("images", np.dtype("float32"), (8,))
    seen = {
        m.name: probes.probe_inputs([spec], m.low, m.high, distribution=m.distribution)["images"]
        for m in probes.magnitudes(None, [spec])
    }
    assert seen["unit interval"].max() <= 1.0 and seen["0..255 pixels"].max() > 100
    assert seen["standard normal"].min() < 0 < seen["standard normal"].max()
    assert np.abs(seen["large"]).max() > 1000
    assert [m.name for m in probes.magnitudes((0.0, 255.0), [spec])] == ["declared range 0..255"]


def _token_model(*, pinned: bool = False, vocabulary: int = 50):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    embedded = keras.layers.Embedding(vocabulary, 4, name="token_embedding")(token_ids)
    mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
    pooled = keras.ops.sum(embedded * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
    x = keras.layers.Dropout(0.5, name="fc_dropout")(pooled, training=True if pinned else None)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, outputs, name="tokens")


def test_token_ids_stay_in_the_vocabulary_and_padding_masks_are_prefixes():
    specs = {spec.name: spec for spec in probes.keras_input_specs(_token_model(vocabulary=50))}
    assert specs["token_ids"].vocabulary == 50 and specs["padding_mask"].is_padding_mask
    batch = probes.probe_inputs(list(specs.values()), 0.0, 1.0)
    assert 1 < batch["token_ids"].max() <= 49 and batch["token_ids"].min() >= 0
    mask = batch["padding_mask"]
    lengths = mask.sum(axis=1)
    assert (np.diff(mask, axis=1) <= 0).all() and lengths.min() >= 1 and len(set(lengths)) > 1


@pytest.mark.parametrize("pinned", [False, True])
def test_token_and_mask_model_is_judged(pinned):
    report = verify(_token_model(pinned=pinned))
    assert report.ok is (not pinned), report.to_json()


def test_string_lookup_inputs_are_probed_with_its_tokens():
    words = keras.Input((3,), dtype="string", name="words")
    ids = keras.layers.StringLookup(vocabulary=["cat", "dog", "bird"], name="lookup")(words)
    x = keras.layers.Flatten(name="flat")(keras.layers.Embedding(4, 2, name="embedding")(ids))
    model = keras.Model(words, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    (spec,) = probes.keras_input_specs(model)
    assert spec.tokens == ("cat", "dog", "bird")
    assert set(probes.probe_inputs([spec], 0.0, 1.0)["words"].ravel()) <= {b"cat", b"dog", b"bird"}
    assert verify(model).ok


@pytest.mark.parametrize("pinned", [False, True])
def test_inputs_of_different_ranks_are_judged(pinned):
    images = keras.Input((4, 4, 1), name="images")
    scale = keras.Input((), name="scale")
    sequence = keras.Input((3, 2), name="sequence")
    x = keras.layers.Concatenate(name="joined")(
        [
            keras.layers.Flatten(name="flat_images")(images),
            keras.layers.Reshape((1,), name="scale_column")(scale),
            keras.layers.Flatten(name="flat_sequence")(sequence),
        ]
    )
    x = keras.layers.Dropout(0.5, name="fc_dropout")(
        keras.layers.Dense(8, name="fc1")(x), training=True if pinned else None
    )
    model = keras.Model(
        [images, scale, sequence], keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    )
    report = verify(model)
    assert report.ok is (not pinned), report.to_json()
