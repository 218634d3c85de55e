"""Tests generated from the registry (timm-style): every registered model must pass each of them."""

import numpy as np
import pytest

import kerasdrop
from kerasdrop.zoo import model_info
from kerasdrop.zoo.rewire import head_dropout_layers

# Backbones chosen to cover each preprocessing mode of keras_app (model, tf, caffe, torch).
KERAS_APPS = [
    "keras_app:EfficientNetB0",
    "keras_app:MobileNetV2",
    "keras_app:ResNet50",
    "keras_app:DenseNet121",
]
MODEL_NAMES = kerasdrop.list_models() + KERAS_APPS
BATCH = 4


def _input_shape_for(name):
    """The smallest convenient input for each model: tests stay fast, shapes stay legal."""
    info = model_info(name)
    side = max(info.min_spatial_size, 8)
    channels = 1 if info.family in ("mlp", "lenet", "simple_cnn") else 3
    return (side, side, channels)


def _images(shape, batch=BATCH, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(batch, *shape)).astype("float32")


@pytest.fixture(scope="module", params=MODEL_NAMES)
def built(request):
    """(name, model, images) with the model's default head, built once per model for this module."""
    import keras

    keras.utils.set_random_seed(7)
    shape = _input_shape_for(request.param)
    model = kerasdrop.create_model(request.param, num_classes=5, input_shape=shape)
    return request.param, model, _images(shape)


def test_registry_lists_every_family():
    families = {model_info(name).family for name in kerasdrop.list_models()}
    assert families == {"mlp", "simple_cnn", "lenet", "alexnet", "vgg", "resnet"}
    assert {"vgg11", "vgg13", "vgg16", "resnet18", "lenet5", "alexnet", "simple_cnn", "mlp"} <= set(
        kerasdrop.list_models()
    )


def test_forward_pass_gives_probabilities_without_nan(built):
    name, model, images = built
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (BATCH, 5), name
    assert np.isfinite(probabilities).all(), name
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_inference_is_deterministic(built):
    name, model, images = built
    first = np.asarray(model(images, training=False))
    second = np.asarray(model(images, training=False))
    np.testing.assert_array_equal(first, second, err_msg=name)


def test_training_mode_differs_from_inference_when_dropout_is_on(built):
    name, model, images = built
    assert any(layer.rate > 0 for layer in head_dropout_layers(model)), f"{name} default head has no dropout"
    inference = np.asarray(model(images, training=False))
    training = np.asarray(model(images, training=True))
    assert not np.allclose(inference, training), name


def test_every_hidden_dense_is_followed_by_its_dropout_layer(built):
    import keras

    name, model, _ = built
    info = model_info(name)
    layers = model.layers
    hidden = [
        layer for layer in layers if layer.name.startswith("fc") and isinstance(layer, keras.layers.Dense)
    ]
    assert [layer.units for layer in hidden] == list(info.default_dense_units)
    for index, dense in enumerate(hidden, start=1):
        assert dense.name == f"fc{index}"
        consumers = [node.operation for node in dense._outbound_nodes]
        assert [c.name for c in consumers] == [f"fc{index}_dropout"], name
        assert isinstance(consumers[0], keras.layers.Dropout)
        assert consumers[0].rate == pytest.approx(info.default_dropout)
    assert layers[-1].name == "predictions"
    assert model.inputs[0].name == "images"


def test_keras_round_trip_gives_identical_outputs_with_safe_mode(built, tmp_path):
    import keras

    name, model, images = built
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        np.asarray(model(images, training=False)), np.asarray(reloaded(images, training=False)), err_msg=name
    )


def test_set_dropout_keeps_weights_and_changes_rates(built):
    name, model, images = built
    rewired = kerasdrop.set_dropout(model, 0.0)
    assert [layer.rate for layer in head_dropout_layers(rewired)] == [0.0] * len(head_dropout_layers(model))
    assert [layer.rate for layer in head_dropout_layers(model)] != [0.0] * len(head_dropout_layers(model)), (
        "the original model must be left unchanged"
    )
    for layer in model.layers:
        for before, after in zip(layer.get_weights(), rewired.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(
        np.asarray(model(images, training=False)), np.asarray(rewired(images, training=False)), err_msg=name
    )


@pytest.mark.slow
def test_one_training_step_gives_a_finite_loss_and_changes_the_weights(built):
    """timm's per-model forward+backward: every registered model can actually be trained."""
    import keras

    name, model, images = built
    model = keras.models.clone_model(model)  # the module-scoped model stays untrained for the other tests
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    labels = np.arange(BATCH) % 5
    before = [np.array(weight) for weight in model.trainable_weights]
    loss = model.train_on_batch(images, labels)
    after = [np.array(weight) for weight in model.trainable_weights]
    assert np.isfinite(loss), f"{name}: loss {loss}"
    changed = sum(not np.array_equal(old, new) for old, new in zip(before, after))
    assert changed == len(before), (
        f"{name}: {len(before) - changed} of {len(before)} trainable weights did not change"
    )
