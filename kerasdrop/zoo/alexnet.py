"""AlexNet (Krizhevsky et al., 2012), small-input variant for 32x32 images.

The five conv layers and the two hidden FC layers of 4096 with Dropout(0.5) are the paper's; the
first conv is 5x5 stride 1 instead of 11x11 stride 4 so 32x32 images are not reduced to nothing.
"""

from __future__ import annotations

from kerasdrop.zoo._blocks import model_input, smallest_input, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model

# Blocks of (filters, kernel) convs; each block ends in a 3x3 stride-2 overlapping max-pool.
cfgs = {"alexnet": [[(64, 5)], [(192, 5)], [(384, 3), (256, 3), (256, 3)]]}


def _create_alexnet(variant, *, num_classes, input_shape, head, conv_dropout, input_range, name):
    import keras

    images, x = model_input(input_shape, input_range)
    for block, convs in enumerate(cfgs[variant], start=1):
        for index, (filters, kernel) in enumerate(convs, start=1):
            x = keras.layers.Conv2D(
                filters, kernel, padding="same", activation="relu", name=f"block{block}_conv{index}"
            )(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name=f"block{block}_pool")(x)
        x = spatial_dropout(x, conv_dropout, f"block{block}_dropout")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


@register_model(
    default_input_shape=(32, 32, 3),
    default_dense_units=(4096, 4096),
    default_dropout=0.5,
    min_spatial_size=smallest_input([(3, 2, "valid")] * len(cfgs["alexnet"])),
)
def alexnet(**kwargs):
    """AlexNet for 32x32 inputs, FC 4096-4096 with dropout."""
    return _create_alexnet("alexnet", **kwargs)
