"""ResNet (He et al., 2015) with basic blocks, global average pooling, then the Dense + Dropout head.

`stem="imagenet"` is the paper's 7x7/2 conv + 3x3/2 max-pool; `stem="cifar"` is a 3x3/1 conv with
no pooling, the usual choice for 32x32 images. `stem="auto"` (default) picks imagenet from 64 pixels up.
"""

from __future__ import annotations

from kerasdrop._validation import check_choice
from kerasdrop.zoo._blocks import model_input, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import register_model

# Basic blocks per stage; stage s has 64 * 2**(s-1) filters and stages 2-4 start with stride 2.
cfgs = {"resnet18": [2, 2, 2, 2]}
STEMS = ("auto", "imagenet", "cifar")
_IMAGENET_STEM_FROM = 64


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    import keras

    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    # momentum 0.9 (torchvision's 0.1): with 0.99 the moving statistics lag far behind on small
    # data sets (digits: ResNet-18 at 44% test accuracy after 300 steps, measured).
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    import keras

    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", relu=False)
    x = _conv_bn(x, filters, 3, stride, f"{name}_1")
    x = _conv_bn(x, filters, 3, 1, f"{name}_2", relu=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def _create_resnet(variant, *, num_classes, input_shape, head, conv_dropout, input_range, name, stem="auto"):
    stem = check_choice(stem, "stem", STEMS)
    if stem == "auto":
        stem = "imagenet" if min(input_shape[:2]) >= _IMAGENET_STEM_FROM else "cifar"
    import keras

    images, x = model_input(input_shape, input_range)
    if stem == "imagenet":
        x = _conv_bn(x, 64, 7, 2, "stem")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _conv_bn(x, 64, 3, 1, "stem")
    for stage, blocks in enumerate(cfgs[variant], start=1):
        filters = 64 * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}")
        x = spatial_dropout(x, conv_dropout, f"stage{stage}_dropout")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


@register_model(
    default_input_shape=(224, 224, 3),
    default_dense_units=(512,),
    default_dropout=0.5,
    min_spatial_size=8,
    family_options=("stem",),
)
def resnet18(**kwargs):
    """ResNet-18 (basic blocks 2-2-2-2), GAP, FC 512 with dropout."""
    return _create_resnet("resnet18", **kwargs)
