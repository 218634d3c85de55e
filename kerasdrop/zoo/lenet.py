"""LeNet-5 (LeCun et al., 1998) with ReLU, max-pooling and 'same' convolutions.

'same' padding lets the same network take 8x8 digits as well as 28x28 MNIST and 32x32 inputs;
the head keeps LeNet's 120 and 84 hidden units, each followed by dropout.
"""

from __future__ import annotations

from kerasdrop.zoo._blocks import model_input, smallest_input, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model

# (filters, kernel) per block (C1/S2, C3/S4); each ends in a 2x2 pooling step.
cfgs = {"lenet5": [(6, 5), (16, 5)]}


def _create_lenet(variant, *, num_classes, input_shape, head, conv_dropout, input_range, name):
    import keras

    images, x = model_input(input_shape, input_range)
    for block, (filters, kernel) in enumerate(cfgs[variant], start=1):
        x = keras.layers.Conv2D(
            filters, kernel, padding="same", activation="relu", name=f"block{block}_conv1"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = spatial_dropout(x, conv_dropout, f"block{block}_dropout")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


@register_model(
    default_input_shape=(32, 32, 1),
    default_dense_units=(120, 84),
    default_dropout=0.25,
    min_spatial_size=smallest_input([(2, 2, "valid")] * len(cfgs["lenet5"])),
)
def lenet5(**kwargs):
    """LeNet-5: 2 conv blocks, hidden Dense 120 and 84."""
    return _create_lenet("lenet5", **kwargs)
