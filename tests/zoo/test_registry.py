"""The registry API: patterns, keras_app listing, registering a new family entry."""

import pytest

import kerasdrop
from kerasdrop.zoo import registry


def test_list_models_takes_shell_patterns():
    assert kerasdrop.list_models("vgg*") == ["vgg11", "vgg13", "vgg16"]
    assert kerasdrop.list_models(["mlp", "lenet?"]) == ["lenet5", "mlp"]
    assert kerasdrop.list_models("nothing*") == []


def test_keras_app_backbones_are_listed_on_request():
    assert not any(name.startswith("keras_app:") for name in kerasdrop.list_models())
    backbones = kerasdrop.list_models("keras_app:ResNet*")
    assert "keras_app:ResNet50" in backbones and "keras_app:ResNet50V2" in backbones
    assert "keras_app:MobileNetV2" in kerasdrop.list_models(include_keras_apps=True)


def test_register_model_adds_an_entry_with_its_family_and_defaults(monkeypatch):
    monkeypatch.setattr(registry, "_model_entrypoints", dict(registry._model_entrypoints))
    monkeypatch.setattr(registry, "_model_info", dict(registry._model_info))

    @registry.register_model(
        default_input_shape=(8, 8, 1), default_dense_units=(4,), default_dropout=0.3, min_spatial_size=1
    )
    def tiny_mlp(**kwargs):
        """A test entry."""
        from kerasdrop.zoo.mlp import _create_mlp

        return _create_mlp(**kwargs)

    assert "tiny_mlp" in kerasdrop.list_models()
    info = kerasdrop.model_info("tiny_mlp")
    assert (info.family, info.default_dropout, info.description) == ("test_registry", 0.3, "A test entry.")
    model = kerasdrop.create_model("tiny_mlp", num_classes=2)
    assert model.input_shape == (None, 8, 8, 1)
    assert model.get_layer("fc1_dropout").rate == pytest.approx(0.3)

    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(
            default_input_shape=(8, 8, 1), default_dense_units=(), default_dropout=0.0, min_spatial_size=1
        )(tiny_mlp)
