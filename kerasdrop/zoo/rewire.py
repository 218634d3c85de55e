"""`set_dropout`: the same model and weights with new dropout rates or kind.

Keras bakes a Dropout's rate into the traced call, so assigning `layer.rate` after build changes
nothing; the model has to be rebuilt around the same weights, which is what this does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kerasdrop._validation import check_choice, invalid_argument
from kerasdrop.zoo.head import DROPOUT_KINDS, dropout_layer, resolve_rates

_HEAD_DROPOUT = re.compile(r"fc(\d+)_dropout")


def head_dropout_layers(model) -> list:
    """The head's dropout slots (`fc1_dropout`, `fc2_dropout`, ...) in order."""
    slots = [layer for layer in model.layers if _HEAD_DROPOUT.fullmatch(layer.name)]
    return sorted(slots, key=lambda layer: int(_HEAD_DROPOUT.fullmatch(layer.name).group(1)))


def dropout_kind_of(layer) -> str:
    """The `dropout_kind` a head slot layer implements."""
    import keras

    # Checked most specific first: AlphaDropout and GaussianDropout are not Dropout subclasses in
    # Keras 3, but a user's subclass of Dropout should count as standard.
    for kind, cls in (
        ("alpha", keras.layers.AlphaDropout),
        ("gaussian", keras.layers.GaussianDropout),
        ("standard", keras.layers.Dropout),
        ("none", keras.layers.Identity),
    ):
        if isinstance(layer, cls):
            return kind
    raise invalid_argument("model", "head dropout layers of a kerasdrop kind", type(layer).__name__)


def set_dropout(model, rate_or_rates: float | Sequence[float], kind: str | None = None):
    """Returns a new model with the same weights and new head dropout.

    Args:
        model: a kerasdrop zoo model (built or loaded from `.keras`).
        rate_or_rates: one rate for every hidden Dense, or one per hidden Dense, each in [0, 1).
        kind: `"standard"`, `"gaussian"`, `"alpha"` or `"none"`; `None` keeps each layer's kind
            (a `none` slot given a rate > 0 becomes `standard`).

    Returns:
        A new, uncompiled `keras.Model`; `model` is left unchanged.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise invalid_argument("model", "a keras.Model", type(model).__name__)
    if kind is not None:
        check_choice(kind, "kind", DROPOUT_KINDS)
    slots = head_dropout_layers(model)
    if not slots:
        raise invalid_argument(
            "model",
            "a kerasdrop zoo model with head dropout layers named fc1_dropout, fc2_dropout, ...",
            model.name,
        )
    rates = resolve_rates(rate_or_rates, len(slots))
    replacements = {}
    for slot, rate in zip(slots, rates):
        slot_kind = kind or dropout_kind_of(slot)
        if slot_kind == "none" and kind is None and rate > 0:
            slot_kind = "standard"
        replacements[slot.name] = (slot_kind, rate)

    def clone_layer(layer):
        if layer.name in replacements:
            return dropout_layer(*replacements[layer.name], name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    rewired = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if layer.weights:
            rewired.get_layer(layer.name).set_weights(layer.get_weights())
    return rewired


def as_float32(model):
    """Returns a float32 copy of a model built under a mixed-precision policy (same weights).

    Mixed-precision models keep float32 variables but compute in bfloat16/float16; exports and
    serving expect float32 computation, so training under `training.precision` saves this copy.
    """
    import keras

    def clone_layer(layer):
        config = layer.get_config()
        if "dtype" in config and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    converted = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if layer.weights:
            converted.get_layer(layer.name).set_weights(layer.get_weights())
    return converted
