"""`set_dropout`: same weights, new rates or kind, on built and on reloaded models."""

import numpy as np
import pytest

import kerasdrop


@pytest.fixture
def mlp():
    return kerasdrop.create_model(
        "mlp", num_classes=4, input_shape=(6, 6, 1), dense_units=(64, 32), dropout=0.0
    )


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 255, (16, 6, 6, 1)).astype("float32")


def test_turning_dropout_on_changes_training_behaviour_only(mlp, images):
    assert np.array_equal(mlp(images, training=True), mlp(images, training=False))
    rewired = kerasdrop.set_dropout(mlp, 0.5)
    assert not np.allclose(rewired(images, training=True), rewired(images, training=False))
    np.testing.assert_array_equal(rewired(images, training=False), mlp(images, training=False))


def test_per_layer_rates_and_kind_change(mlp):
    rewired = kerasdrop.set_dropout(mlp, [0.1, 0.4], kind="gaussian")
    layers = [rewired.get_layer("fc1_dropout"), rewired.get_layer("fc2_dropout")]
    assert [type(layer).__name__ for layer in layers] == ["GaussianDropout", "GaussianDropout"]
    assert [layer.rate for layer in layers] == pytest.approx([0.1, 0.4])


def test_kind_none_slot_becomes_standard_dropout_when_given_a_rate():
    model = kerasdrop.create_model("mlp", num_classes=4, input_shape=(6, 6, 1), dropout_kind="none")
    rewired = kerasdrop.set_dropout(model, 0.3)
    assert type(rewired.get_layer("fc1_dropout")).__name__ == "Dropout"


def test_works_on_a_model_loaded_from_keras_file(mlp, images, tmp_path):
    import keras

    mlp.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    rewired = kerasdrop.set_dropout(loaded, 0.25)
    assert rewired.get_layer("fc2_dropout").rate == pytest.approx(0.25)
    np.testing.assert_array_equal(rewired(images, training=False), mlp(images, training=False))
    rewired.save(tmp_path / "rewired.keras")
    assert keras.saving.load_model(tmp_path / "rewired.keras").get_layer("fc1_dropout").rate == pytest.approx(
        0.25
    )


def test_rewired_model_trains(mlp, images):
    rewired = kerasdrop.set_dropout(mlp, 0.5)
    rewired.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = rewired.fit(images, np.arange(16) % 4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "rates, kind, argument",
    [(1.0, None, "dropout"), ([0.1], None, "dropout"), (0.2, "mystery", "kind")],
)
def test_bad_arguments_are_refused(mlp, rates, kind, argument):
    with pytest.raises(ValueError, match=f"^Invalid value received for argument `{argument}`"):
        kerasdrop.set_dropout(mlp, rates, kind=kind)


def test_model_without_head_slots_is_refused():
    import keras

    inputs = keras.Input((3,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="^Invalid value received for argument `model`.*fc1_dropout"):
        kerasdrop.set_dropout(plain, 0.5)
