"""The shared head: dropout kinds, per-layer rates, conv dropout, input rescaling."""

import numpy as np
import pytest

import kerasdrop


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers if layer.name.endswith("_dropout")]


@pytest.mark.parametrize(
    "kind, layer_class, activation",
    [
        ("standard", "Dropout", "relu"),
        ("gaussian", "GaussianDropout", "relu"),
        ("alpha", "AlphaDropout", "selu"),
        ("none", "Identity", "relu"),
    ],
)
def test_dropout_kind_chooses_the_layer_and_activation(kind, layer_class, activation):
    model = kerasdrop.create_model(
        "mlp", num_classes=3, input_shape=(4, 4, 1), dense_units=(8, 8), dropout_kind=kind
    )
    assert _kinds(model) == [layer_class, layer_class]
    assert model.get_layer("fc1").get_config()["activation"] == activation


def test_dropout_kind_none_keeps_training_equal_to_inference():
    model = kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), dropout_kind="none")
    images = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 1)).astype("float32")
    np.testing.assert_array_equal(model(images, training=True), model(images, training=False))


def test_per_layer_rates_are_applied_in_order():
    model = kerasdrop.create_model(
        "mlp", num_classes=3, input_shape=(4, 4, 1), dense_units=(16, 8, 4), dropout=[0.1, 0.2, 0.3]
    )
    assert [model.get_layer(f"fc{i}_dropout").rate for i in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.3])
    assert [model.get_layer(f"fc{i}").units for i in (1, 2, 3)] == [16, 8, 4]


def test_empty_head_goes_straight_to_predictions():
    model = kerasdrop.create_model("lenet5", num_classes=3, input_shape=(8, 8, 1), dense_units=())
    assert model.layers[-2].name == "flatten"


def test_conv_dropout_adds_spatial_dropout_after_each_block():
    model = kerasdrop.create_model(
        "vgg11", num_classes=3, input_shape=(32, 32, 3), dense_units=(8,), conv_dropout=0.1
    )
    spatial = [layer for layer in model.layers if type(layer).__name__ == "SpatialDropout2D"]
    assert [layer.name for layer in spatial] == [f"block{i}_dropout" for i in range(1, 6)]
    assert all(layer.rate == pytest.approx(0.1) for layer in spatial)
    names = [layer.name for layer in model.layers]
    assert [names[names.index(layer.name) - 1] for layer in spatial] == [
        f"block{i}_pool" for i in range(1, 6)
    ]


def test_conv_dropout_is_off_by_default():
    model = kerasdrop.create_model("vgg11", num_classes=3, input_shape=(32, 32, 3), dense_units=(8,))
    assert not any(type(layer).__name__ == "SpatialDropout2D" for layer in model.layers)


def test_model_rescales_its_native_pixel_range_itself():
    # digits pixels are 0..16: the same picture at 0..16 and at 0..255 must give the same prediction.
    small = kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), input_range=(0, 16))
    large = kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), input_range=(0, 255))
    large.set_weights(small.get_weights())
    picture = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 1)).astype("float32")
    np.testing.assert_allclose(
        small(picture * 16, training=False), large(picture * 255, training=False), rtol=1e-5, atol=1e-6
    )


def test_vgg_batch_norm_variant_adds_batch_normalization():
    model = kerasdrop.create_model(
        "vgg11", num_classes=3, input_shape=(32, 32, 3), dense_units=(8,), batch_norm=True
    )
    assert model.get_layer("block1_conv1_bn").__class__.__name__ == "BatchNormalization"


@pytest.mark.parametrize("stem, first_pool", [("imagenet", True), ("cifar", False)])
def test_resnet_stem_option(stem, first_pool):
    model = kerasdrop.create_model(
        "resnet18", num_classes=3, input_shape=(32, 32, 3), dense_units=(8,), stem=stem
    )
    assert any(layer.name == "stem_pool" for layer in model.layers) is first_pool


def test_custom_model_name():
    assert kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), name="my_mlp").name == "my_mlp"


def test_keras_app_batch_norm_momentum_option_reaches_every_backbone_batch_norm(tmp_path):
    import keras

    model = kerasdrop.create_model(
        "keras_app:MobileNetV2",
        num_classes=3,
        input_shape=(32, 32, 3),
        dense_units=(8,),
        batch_norm_momentum=0.9,
    )
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {
        layer.momentum for layer in reloaded.layers if isinstance(layer, keras.layers.BatchNormalization)
    } == {0.9}
    with pytest.raises(ValueError, match="^Invalid value received for argument `batch_norm_momentum`"):
        kerasdrop.create_model(
            "keras_app:MobileNetV2", num_classes=3, input_shape=(32, 32, 3), batch_norm_momentum=1.5
        )
