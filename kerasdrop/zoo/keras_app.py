"""`keras_app:<Name>`: any keras.applications backbone with kerasdrop's Dense + Dropout head.

The backbone is built with `include_top=False` on the model's own `images` input, and is preceded by
the preprocessing its weights expect, so the model still takes raw pixels in `input_range`.
"""

from __future__ import annotations

import os
import re

from kerasdrop._validation import invalid_argument
from kerasdrop.errors import PretrainedWeightsUnavailableError
from kerasdrop.zoo._blocks import input_rescaling, spatial_dropout
from kerasdrop.zoo.head import classifier_head
from kerasdrop.zoo.registry import ModelInfo, register_model_prefix

PREFIX = "keras_app:"

# What each keras.applications module's `preprocess_input` does, keyed by module name.
#   caffe: RGB->BGR, subtract ImageNet means on 0-255;  tf: scale to [-1, 1];
#   torch: [0, 1] then ImageNet mean/std;                model: the backbone preprocesses 0-255 itself.
PREPROCESSING = {
    "resnet": "caffe",
    "vgg16": "caffe",
    "vgg19": "caffe",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "resnet_v2": "tf",
    "inception_v3": "tf",
    "inception_resnet_v2": "tf",
    "xception": "tf",
    "nasnet": "tf",
    "densenet": "torch",
    "efficientnet": "model",
    "efficientnet_v2": "model",
    "convnext": "model",
    "mobilenet_v3": "model",
}
_IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# Backbones designed for a larger input than 224 (their keras.applications default).
_DEFAULT_SIZE = {"InceptionV3": 299, "InceptionResNetV2": 299, "Xception": 299, "NASNetLarge": 331}
_DEFAULT_DENSE_UNITS = (1024,)
_DEFAULT_DROPOUT = 0.5


def backbone_names(*, use_cache: bool = True) -> list[str]:
    """Names of the keras.applications constructors this Keras provides (`ResNet50`, ...).

    Read from the shipped table of this Keras version when it has them, so listing needs no TensorFlow.
    """
    if use_cache:
        cached = _shipped_table().get(backbone_names_key())
        if cached is not None:
            return list(cached)
    import keras

    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and _module_of(getattr(keras.applications, name)) in PREPROCESSING
    )


def backbone_names_key() -> str:
    import importlib.metadata

    return f"keras_app_backbones@keras-{importlib.metadata.version('keras')}"


def _shipped_table() -> dict:
    import json
    import pathlib

    try:
        return json.loads(pathlib.Path(__file__).with_name("param_counts.json").read_text())
    except (OSError, ValueError):
        return {}


def _module_of(constructor) -> str:
    return getattr(constructor, "__module__", "").rsplit(".", 1)[-1]


def keras_app_info(backbone: str) -> ModelInfo:
    known = backbone_names()
    if backbone not in known:
        import difflib

        close = difflib.get_close_matches(backbone, known, n=3, cutoff=0.5)
        hint = f"Did you mean: {', '.join(PREFIX + c for c in close)}? " if close else ""
        raise invalid_argument(
            "model_name",
            f"keras_app:<Name> with a keras.applications backbone. {hint}Backbones: {', '.join(known)}",
            f"{PREFIX}{backbone}",
        )
    size = _DEFAULT_SIZE.get(backbone, 224)
    return ModelInfo(
        name=f"{PREFIX}{backbone}",
        family="keras_app",
        default_input_shape=(size, size, 3),
        default_dense_units=_DEFAULT_DENSE_UNITS,
        default_dropout=_DEFAULT_DROPOUT,
        # keras.applications refuses inputs under 32 pixels (75 or 71 for Inception/Xception; it says so).
        min_spatial_size=32,
        family_options=("weights", "batch_norm_momentum"),
        description=f"keras.applications.{backbone} backbone, FC 1024 with dropout",
    )


def _preprocess(x, mode: str, input_range: tuple[float, float]):
    """Maps raw pixels in `input_range` to what the backbone's weights were trained on.

    The first layer is `input_rescaling` to [0, 1], as in every zoo family (the verifier reads the
    model's pixel range from it); a second step maps [0, 1] to the backbone's own range.
    """
    import keras
    import numpy as np

    x = input_rescaling(input_range)(x)
    if mode == "tf":
        return keras.layers.Rescaling(2.0, offset=-1.0, name="backbone_rescaling")(x)
    if mode == "torch":
        return keras.layers.Normalization(
            mean=[0.485, 0.456, 0.406],
            variance=[s * s for s in _IMAGENET_STD_RGB],
            name="imagenet_normalization",
        )(x)
    x = keras.layers.Rescaling(255.0, name="backbone_rescaling")(x)
    if mode == "caffe":
        # RGB->BGR and mean subtraction as one frozen 1x1 conv: a built-in layer, so the model loads
        # with safe_mode and needs no custom class registered.
        channel_flip = keras.layers.Conv2D(3, 1, trainable=False, name="caffe_preprocessing")
        x = channel_flip(x)
        kernel = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)
        bias = -np.array(_IMAGENET_MEAN_RGB[::-1], dtype="float32")
        channel_flip.set_weights([kernel, bias])
    return x


def create_keras_app(
    backbone,
    *,
    num_classes,
    input_shape,
    head,
    conv_dropout,
    input_range,
    name,
    weights=None,
    batch_norm_momentum=None,
):
    """Builds `keras_app:<backbone>`.

    Args:
        weights: None, a local `.h5`/`.weights.h5` file, or `"imagenet"` (downloads).
        batch_norm_momentum: overrides the backbone's BatchNormalization momentum (None keeps it).
            keras.applications use 0.99-0.999, tuned for ImageNet-length training; trained from
            scratch on a small data set the moving statistics then lag far behind the weights and
            inference-mode accuracy collapses (MobileNetV2 on digits: 98% train-mode, 10% inference,
            measured). 0.9 fixes that.
    """
    import keras

    if batch_norm_momentum is not None and not (
        isinstance(batch_norm_momentum, float) and 0.0 < batch_norm_momentum < 1.0
    ):
        raise invalid_argument("batch_norm_momentum", "a float in (0, 1) or None", batch_norm_momentum)

    if (
        weights is not None
        and weights != "imagenet"
        and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights))
    ):
        raise invalid_argument("weights", "None, 'imagenet' or the path of an existing weights file", weights)
    constructor = getattr(keras.applications, backbone)
    mode = PREPROCESSING[_module_of(constructor)]
    if input_shape[-1] not in (1, 3):
        raise invalid_argument(
            "input_shape", f"1 (grayscale) or 3 (RGB) channels for keras_app:{backbone}", input_shape
        )
    images = keras.Input(shape=input_shape, name="images")
    x = images
    if input_shape[-1] == 1:
        # ImageNet backbones are RGB; a built-in Concatenate (not a Lambda) keeps safe_mode loading.
        x = keras.layers.Concatenate(name="grayscale_to_rgb")([images, images, images])
    x = _preprocess(x, mode, input_range)
    try:
        backbone_model = constructor(
            include_top=False,
            weights=None if weights is None else os.fspath(weights),
            input_tensor=x,
            pooling=None,
        )
    except ValueError as error:
        raise invalid_argument(
            "input_shape", f"a shape keras.applications.{backbone} accepts ({error})", input_shape
        ) from None
    except Exception as error:  # keras.utils.get_file raises a bare Exception when the download fails
        failed = _URL_FETCH_FAILURE.match(str(error))
        if weights != "imagenet" or failed is None:
            raise
        reason = failed["reason"]
        if (failed["code"] or "").isdigit():  # an HTTP status, not an errno
            reason = f"HTTP {failed['code']} {reason}"
        raise _weights_unavailable(PREFIX + backbone, url=failed["url"], reason=reason) from None
    if batch_norm_momentum is not None:
        for layer in backbone_model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = batch_norm_momentum
    x = spatial_dropout(backbone_model.output, conv_dropout, "backbone_dropout")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier_head(x, num_classes=num_classes, head=head)
    return keras.Model(images, outputs, name=name)


# keras.utils.get_file's message for a failed download: "URL fetch failure on <url>: <errno> -- <reason>".
_URL_FETCH_FAILURE = re.compile(
    r"URL fetch failure on (?P<url>\S+): (?:(?P<code>\S+) -- )?(?P<reason>.*)", re.DOTALL
)


def _weights_unavailable(model: str, *, url: str, reason: str) -> PretrainedWeightsUnavailableError:
    """One line, as TFDS says a data set cannot be downloaded offline: the file Keras wanted and where to
    put it."""
    file_name = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        from keras.src.backend.config import keras_home  # Keras' cache root: KERAS_HOME, else ~/.keras

        home = keras_home()
    except ImportError:
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    target = os.path.join(os.path.expanduser(home), "models", file_name)
    reason = " ".join(reason.split())
    return PretrainedWeightsUnavailableError(
        f'{model} with weights="imagenet": Keras could not download {file_name} from {url} ({reason}). '
        f"Offline, fetch that URL on a machine with internet and put the file at {target} (Keras' cache: "
        f'$KERAS_HOME/models, else ~/.keras/models), or train without weights="imagenet".'
    )


register_model_prefix(PREFIX, names=backbone_names, info=keras_app_info, create=create_keras_app)
