"""LiteRT (TFLite) `model.tflite`: converted from the written SavedModel's `serving_default`, so it keeps the
contract's names (`images` in, `probabilities` and `class_ids` out) and a dynamic batch dimension.

Keras 3's own `model.export(format="litert")` names the outputs `output_0` and drops `class_ids`, so it
is not used here.
"""

from __future__ import annotations

import pathlib

from kerasdrop import layout
from kerasdrop.exporting.savedmodel import SERVING_SIGNATURE


def converter(staging: pathlib.Path):
    """The TFLiteConverter over the staged SavedModel's serving signature (builtin ops only: a file that
    needs the Select-TF-ops delegate would not run on the runtimes LiteRT targets)."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(staging), signature_keys=[SERVING_SIGNATURE])


def write(model, staging: pathlib.Path) -> None:
    del model  # converted from the SavedModel already in `staging` (published only by the atomic rename)
    (pathlib.Path(staging) / layout.TFLITE_FILE).write_bytes(converter(staging).convert())
