"""Multilayer perceptron: flatten the image, then the shared Dense + Dropout head.

Defaults follow the Keras MNIST MLP example: two hidden layers of 512 with Dropout(0.2).
"""

from __future__ import annotations

from kerasdrop._validation import invalid_argument
from kerasdrop.zoo._blocks import model_input
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model


def _create_mlp(*, num_classes, input_shape, head, conv_dropout, input_range, name):
    if conv_dropout:
        raise invalid_argument("conv_dropout", "None or 0 for mlp, which has no conv blocks", conv_dropout)
    import keras

    images, x = model_input(input_shape, input_range)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


@register_model(
    default_input_shape=(28, 28, 1), default_dense_units=(512, 512), default_dropout=0.2, min_spatial_size=1
)
def mlp(**kwargs):
    """Flatten + hidden Dense layers (the Keras MNIST MLP)."""
    return _create_mlp(**kwargs)
