"""The keras-io "Simple MNIST convnet": two 3x3 conv + max-pool blocks, then the shared head.

keras-io puts Dropout(0.5) after Flatten and no hidden Dense; here the trunk is the same and the
regularisation is where kerasdrop puts it: Dense(128) followed by Dropout(0.5).
"""

from __future__ import annotations

from kerasdrop.zoo._blocks import model_input, smallest_input, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model

# (filters, kernel) per block; each block ends in a 2x2 max-pool.
cfgs = {"simple_cnn": [(32, 3), (64, 3)]}


def _downsampling(cfg):
    return [step for _, kernel in cfg for step in ((kernel, 1, "valid"), (2, 2, "valid"))]


def _create_simple_cnn(variant, *, num_classes, input_shape, head, conv_dropout, input_range, name):
    import keras

    images, x = model_input(input_shape, input_range)
    for block, (filters, kernel) in enumerate(cfgs[variant], start=1):
        x = keras.layers.Conv2D(filters, kernel, activation="relu", name=f"block{block}_conv1")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = spatial_dropout(x, conv_dropout, f"block{block}_dropout")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


@register_model(
    default_input_shape=(28, 28, 1),
    default_dense_units=(128,),
    default_dropout=0.5,
    min_spatial_size=smallest_input(_downsampling(cfgs["simple_cnn"])),
)
def simple_cnn(**kwargs):
    """The keras-io MNIST convnet (2 conv blocks)."""
    return _create_simple_cnn("simple_cnn", **kwargs)
