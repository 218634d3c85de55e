"""ONNX with tf2onnx: the same `serving_default` function, so the same input and output names as the
SavedModel (`interface.py`), checked with `onnx.checker` (full check) at a stated opset."""

from __future__ import annotations

import pathlib

from kerasdrop import layout

OPSET = 17


def write_onnx(model, path: pathlib.Path, *, opset: int = OPSET) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    from kerasdrop.exporting.savedmodel import input_signature, serving_function

    signature = input_signature(model)
    function = tf.function(serving_function(model), input_signature=signature)
    tf2onnx.convert.from_function(function, input_signature=signature, opset=opset, output_path=str(path))
    onnx.checker.check_model(str(path), full_check=True)


def write(model, staging: pathlib.Path) -> None:
    write_onnx(model, pathlib.Path(staging) / layout.ONNX_FILE)
