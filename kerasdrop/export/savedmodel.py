"""SavedModel for TF Serving: `serving_default` traced with training=False, optional `mc_dropout`.

Signatures (method `tensorflow/serving/predict`): `serving_default(images) -> {probabilities,
class_ids}`; with `mc_samples`, `mc_dropout(images) -> {mean, stddev}` over that many passes with
dropout active and everything else (BatchNorm included) in inference mode.
"""

from __future__ import annotations

import pathlib

# The stochastic passes live in the zoo so the MC-dropout studies (kerasdrop/train/) run the very
# function the `mc_dropout` signature exports.
from kerasdrop.zoo.monte_carlo import monte_carlo_function, monte_carlo_model  # noqa: F401

SERVING_SIGNATURE = "serving_default"
MC_SIGNATURE = "mc_dropout"
INPUT_NAME = "images"


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


def write_savedmodel(model, directory: pathlib.Path, *, mc_samples: int | None = None) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = input_signature(model)
    archive.add_endpoint(SERVING_SIGNATURE, serving_function(model), input_signature=signature)
    if mc_samples:
        archive.add_endpoint(MC_SIGNATURE, monte_carlo_function(model, mc_samples), input_signature=signature)
    archive.write_out(str(directory), verbose=False)
