"""SavedModel for TF Serving: `serving_default` traced with training=False, optional `mc_dropout`.

Signatures (method `tensorflow/serving/predict`): `serving_default` with the names `interface.py`
decides (a softmax classifier: `images -> {probabilities, class_ids}`; any other model its own
names); with `mc_samples`, `mc_dropout(<input>) -> {mean, stddev}` over that many passes with dropout
active and everything else (BatchNorm included) in inference mode.
"""

from __future__ import annotations

import pathlib

# input_signature and serving_function are imported from here by onnx.py and bench/.
from kerasdrop.exporting.interface import (
    input_signature,
    serving_function,
    serving_interface,
)

# The stochastic passes live in the zoo so the MC-dropout studies (kerasdrop/training/) run the very
# function the `mc_dropout` signature exports.
from kerasdrop.zoo.monte_carlo import monte_carlo_function

__all__ = [
    "MC_SIGNATURE",
    "SERVING_SIGNATURE",
    "check_mc_samples",
    "input_signature",
    "serving_function",
    "write_savedmodel",
]

SERVING_SIGNATURE = "serving_default"
MC_SIGNATURE = "mc_dropout"


def check_mc_samples(model, mc_samples: int | None) -> None:
    """`mc_dropout` averages one output over passes of one input: refused for other models, before any work."""
    from kerasdrop._validation import invalid_argument

    interface = serving_interface(model)
    if mc_samples and (len(interface.inputs) != 1 or len(interface.outputs) != 1):
        raise invalid_argument(
            "mc_samples",
            "None for a model with several inputs or outputs (mc_dropout gives "
            f"the mean and stddev of one output over passes of one input; this model maps "
            f"{', '.join(interface.input_names)} -> {', '.join(interface.outputs)})",
            mc_samples,
        )


def write_savedmodel(
    model,
    directory: pathlib.Path,
    *,
    mc_samples: int | None = None,
    image_bytes_range: tuple[float, float] | None = None,
) -> None:
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
        archive.add_endpoint(
            image_bytes.BYTES_SIGNATURE,
            image_bytes.bytes_serving_function(model, serving_function(model), image_bytes_range),
            input_signature=image_bytes.bytes_input_signature(signature[0].name),
        )
    archive.write_out(str(directory), verbose=False)
