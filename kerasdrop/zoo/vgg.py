"""VGG (Simonyan & Zisserman, 2014): 3x3 conv stacks, then the paper's two FC-4096 layers with dropout.

`batch_norm=True` gives the `_bn` variants (BatchNormalization between each conv and its ReLU).
"""

from __future__ import annotations

from kerasdrop._validation import invalid_argument
from kerasdrop.zoo._blocks import model_input, smallest_input, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model

# Conv widths; "M" is a 2x2 max-pool that closes a block.
cfgs = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
# Five 2x2 pools: the paper's smallest input is 32x32 (keras.applications' VGG checks the same).
_MIN_SIZE = smallest_input([(2, 2, "valid")] * 5)


def _create_vgg(
    variant, *, num_classes, input_shape, head, conv_dropout, input_range, name, batch_norm=False
):
    if not isinstance(batch_norm, bool):
        raise invalid_argument("batch_norm", "True or False", batch_norm)
    import keras

    images, x = model_input(input_shape, input_range)
    block, conv = 1, 1
    for width in cfgs[variant]:
        if width == "M":
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            x = spatial_dropout(x, conv_dropout, f"block{block}_dropout")
            block, conv = block + 1, 1
            continue
        prefix = f"block{block}_conv{conv}"
        if batch_norm:
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=prefix)(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(
                x
            )  # as resnet.py: small data
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        else:
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=prefix)(x)
        conv += 1
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


_DEFAULTS = dict(
    default_input_shape=(224, 224, 3),
    default_dense_units=(4096, 4096),
    default_dropout=0.5,
    min_spatial_size=_MIN_SIZE,
    family_options=("batch_norm",),
)


@register_model(**_DEFAULTS)
def vgg11(**kwargs):
    """VGG-11 (config A), FC 4096-4096 with dropout."""
    return _create_vgg("vgg11", **kwargs)


@register_model(**_DEFAULTS)
def vgg13(**kwargs):
    """VGG-13 (config B), FC 4096-4096 with dropout."""
    return _create_vgg("vgg13", **kwargs)


@register_model(**_DEFAULTS)
def vgg16(**kwargs):
    """VGG-16 (config D), FC 4096-4096 with dropout."""
    return _create_vgg("vgg16", **kwargs)
