"""SavedModel for TF Serving: `serving_default` traced with training=False, optional `mc_dropout`.

Signatures (method `tensorflow/serving/predict`): `serving_default(images) -> {probabilities,
class_ids}`; with `mc_samples`, `mc_dropout(images) -> {mean, stddev}` over that many passes with
dropout active and everything else (BatchNorm included) in inference mode.
"""

from __future__ import annotations

import pathlib

# The stochastic passes live in the zoo so the MC-dropout studies (kerasdrop/training/) run the very
# function the `mc_dropout` signature exports.
from kerasdrop.zoo.monte_carlo import monte_carlo_function

SERVING_SIGNATURE = "serving_default"
MC_SIGNATURE = "mc_dropout"
INPUT_NAME = "images"


def check_classifier(model) -> None:
    """Refuses a model whose one output is not a softmax probability vector (a regressor, logits, ...).

    `serving_default` publishes `probabilities` and their argmax as `class_ids`: for any other output
    those names would be wrong, so such a model is refused rather than mislabelled.
    """
    from kerasdrop._validation import invalid_argument

    outputs = getattr(model, "outputs", None) or []
    last = model.layers[-1] if model.layers else None
    config = last.get_config() if last is not None else {}
    softmax = type(last).__name__ == "Softmax" or config.get("activation") == "softmax"
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or not softmax:
        described = (f"{len(outputs)} outputs" if len(outputs) != 1 else
                     f"output {outputs[0].shape} from {type(last).__name__} {last.name!r} with activation "
                     f"{config.get('activation', 'none')!r}")
        raise invalid_argument(
            "model", "a classifier whose one output is a softmax probability vector (batch, classes): export "
            f"publishes `{INPUT_NAME} -> probabilities, class_ids`, which would mislabel any other output", described)


def input_signature(model):
    import tensorflow as tf

    return [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=INPUT_NAME)]


def serving_function(model):
    """`images -> {"probabilities", "class_ids"}` with the model called in inference mode, explicitly."""
    import tensorflow as tf

    def serve(images):
        probabilities = model(images, training=False)
        return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

    return serve


def write_savedmodel(model, directory: pathlib.Path, *, mc_samples: int | None = None,
                     image_bytes_range: tuple[float, float] | None = None) -> None:
    """`image_bytes_range`: adds `serving_bytes` (encoded images in), decoding into this pixel range."""
    import keras

    from kerasdrop.exporting import image_bytes

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = input_signature(model)
    archive.add_endpoint(SERVING_SIGNATURE, serving_function(model), input_signature=signature)
    if mc_samples:
        archive.add_endpoint(MC_SIGNATURE, monte_carlo_function(model, mc_samples), input_signature=signature)
    if image_bytes_range is not None:
        archive.add_endpoint(image_bytes.BYTES_SIGNATURE,
                             image_bytes.bytes_serving_function(model, serving_function(model), image_bytes_range),
                             input_signature=image_bytes.bytes_input_signature(signature[0].name))
    archive.write_out(str(directory), verbose=False)
