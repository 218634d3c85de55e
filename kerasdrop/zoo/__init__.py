"""The model zoo: registry, families and the shared Dense + Dropout head."""

from kerasdrop.zoo.head import DROPOUT_KINDS, HeadConfig
from kerasdrop.zoo.registry import ModelInfo, create_model, list_models, model_info, register_model
from kerasdrop.zoo.rewire import set_dropout

__all__ = [
    "DROPOUT_KINDS", "HeadConfig", "ModelInfo", "create_model", "list_models", "model_info",
    "register_model", "set_dropout",
]
