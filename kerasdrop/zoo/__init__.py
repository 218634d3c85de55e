"""The model zoo: registry, families and the shared Dense + Dropout head."""

# Importing a family module registers its models; the registry itself imports no family.
from kerasdrop.zoo import alexnet, keras_app, lenet, mlp, resnet, simple_cnn, vgg  # noqa: F401
from kerasdrop.zoo.head import DROPOUT_KINDS, HeadConfig
from kerasdrop.zoo.registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)
from kerasdrop.zoo.rewire import set_dropout

__all__ = [
    "DROPOUT_KINDS",
    "HeadConfig",
    "ModelInfo",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "set_dropout",
]
