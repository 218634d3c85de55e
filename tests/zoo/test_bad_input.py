"""Every bad argument is a ValueError in the Keras template, raised before any layer is built."""

import math

import pytest

import kerasdrop

TEMPLATE = "Invalid value received for argument"


@pytest.fixture
def no_layers_built(monkeypatch):
    """Fails the test if the model gets as far as creating its Input."""
    import keras

    def refuse(*args, **kwargs):
        raise AssertionError("a layer was built before the bad argument was rejected")

    monkeypatch.setattr(keras, "Input", refuse)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=1.5), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(dropout=math.nan), "dropout"),
        (dict(dropout="0.5"), "dropout"),
        (dict(dropout=True), "dropout"),
        (dict(dense_units=(64, 32), dropout=[0.5]), "dropout"),
        (dict(dense_units=(64,), dropout=[0.5, 0.2]), "dropout"),
        (dict(dense_units=(64, 32), dropout=[0.5, 1.0]), "dropout"),
        (dict(dense_units=(64, 0)), "dense_units"),
        (dict(dense_units=64), "dense_units"),
        (dict(dropout_kind="bernoulli"), "dropout_kind"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=2.5), "num_classes"),
        (dict(input_shape=(32, 32)), "input_shape"),
        (dict(input_shape=(32, -1, 3)), "input_shape"),
        (dict(conv_dropout=1.0), "conv_dropout"),
        (dict(input_range=(255, 0)), "input_range"),
        (dict(input_range=(0, math.inf)), "input_range"),
        (dict(batch_norm=True), "batch_norm"),
    ],
)
def test_bad_argument_raises_keras_template_error(kwargs, argument, no_layers_built):
    arguments = dict(num_classes=10, input_shape=(8, 8, 1))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=f"^{TEMPLATE} `{argument}`"):
        kerasdrop.create_model("lenet5", **arguments)


def test_error_message_says_what_was_expected_and_received():
    with pytest.raises(ValueError) as raised:
        kerasdrop.create_model("mlp", num_classes=10, dropout=1.5)
    assert str(raised.value) == (
        "Invalid value received for argument `dropout`. Expected a float in [0, 1). Received: dropout=1.5"
    )


def test_input_too_small_for_vgg16_pooling_is_refused(no_layers_built):
    with pytest.raises(ValueError, match=f"^{TEMPLATE} `input_shape`.*>= 32 for vgg16"):
        kerasdrop.create_model("vgg16", num_classes=10, input_shape=(16, 16, 3))


@pytest.mark.parametrize("name, minimum", [("simple_cnn", 10), ("alexnet", 15), ("lenet5", 4)])
def test_each_family_states_its_smallest_input(name, minimum, no_layers_built):
    with pytest.raises(ValueError, match=f">= {minimum} for {name}"):
        kerasdrop.create_model(name, num_classes=10, input_shape=(minimum - 1, minimum - 1, 1))


def test_smallest_accepted_input_really_builds():
    for name in ("simple_cnn", "alexnet", "lenet5", "vgg11"):
        side = kerasdrop.model_info(name).min_spatial_size
        model = kerasdrop.create_model(name, num_classes=3, input_shape=(side, side, 1), dense_units=(4,))
        assert model.output_shape == (None, 3)


def test_unknown_model_name_lists_close_matches(no_layers_built):
    with pytest.raises(ValueError, match=f"^{TEMPLATE} `model_name`.*Did you mean: vgg1[136]") as raised:
        kerasdrop.create_model("vgg17", num_classes=10)
    assert "Received: model_name='vgg17'" in str(raised.value)


def test_unknown_keras_app_lists_close_matches(no_layers_built):
    with pytest.raises(ValueError, match="Did you mean: keras_app:ResNet50"):
        kerasdrop.create_model("keras_app:ResNet05", num_classes=10)


def test_missing_keras_app_weights_file_is_refused(tmp_path, no_layers_built):
    with pytest.raises(ValueError, match=f"^{TEMPLATE} `weights`"):
        kerasdrop.create_model(
            "keras_app:MobileNetV2",
            num_classes=10,
            input_shape=(32, 32, 3),
            weights=str(tmp_path / "missing.h5"),
        )


def test_conv_dropout_on_mlp_is_refused(no_layers_built):
    with pytest.raises(ValueError, match=f"^{TEMPLATE} `conv_dropout`.*no conv blocks"):
        kerasdrop.create_model("mlp", num_classes=10, conv_dropout=0.2)
