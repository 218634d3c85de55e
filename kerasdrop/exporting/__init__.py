"""Export: verify, then publish SavedModel, ONNX, LiteRT and OpenVINO into a TF Serving model repository.

One module per format (`savedmodel.py`, `onnx.py`, `litert.py`, `openvino.py`, listed in `formats.py`;
`int8.py`, `image_bytes.py`) behind `pipeline.export`,
which refuses to publish anything the verifier has not passed; what a version carries beside them
(`warmup.py`, `golden.py`, `model_card.py`), and the repository it lands in (`repository.py` versions and
atomic publish, `models_config.py`). Imports verification, training, zoo and data; never serving or cli.
"""

__all__ = ["FORMATS", "ExportRefusedError", "ExportResult", "export"]


def __getattr__(name):
    # Lazily, so that the CLI can read the format list (formats.py) at start-up without importing the
    # pipeline, and with it the verifier, numpy and TensorFlow's helpers.
    if name in __all__:
        from kerasdrop.exporting import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'kerasdrop.exporting' has no attribute {name!r}")
