"""OpenVINO IR `model.xml` + `model.bin`: converted from the written SavedModel's `serving_default`, so it
keeps the contract's names (`images` in, `probabilities` and `class_ids` out) and a dynamic batch.

Keras 3's own `model.export(format="openvino")` names the outputs after TF's internal tensors
(`Identity:0`, `<model>/predictions_1/Softmax:0`) and drops `class_ids`, so it is not used here.
"""

from __future__ import annotations

import pathlib

from kerasdrop import layout


def write(model, staging: pathlib.Path) -> None:
    import openvino

    del model  # converted from the SavedModel already in `staging`
    converted = openvino.convert_model(str(staging))
    # compress_to_fp16=False: the IR keeps float32 weights, so it reproduces Keras within the verifier's
    # tolerance (OpenVINO's default halves the weights to float16).
    openvino.save_model(
        converted, str(pathlib.Path(staging) / layout.OPENVINO_XML_FILE), compress_to_fp16=False
    )
