"""Export: verify, then publish SavedModel, ONNX, LiteRT and OpenVINO into a TF Serving model repository.

One module per format (`savedmodel.py`, `onnx.py`, `litert.py`, `openvino.py`, listed in `formats.py`;
`int8.py`, `image_bytes.py`) behind `pipeline.export`,
which refuses to publish anything the verifier has not passed; what a version carries beside them
(`warmup.py`, `golden.py`, `model_card.py`), and the repository it lands in (`repository.py` versions and
atomic publish, `models_config.py`). Imports verification, training, zoo and data; never serving or cli.
"""

from kerasdrop.exporting.pipeline import (
    FORMATS,
    ExportRefusedError,
    ExportResult,
    export,
)

__all__ = ["FORMATS", "ExportRefusedError", "ExportResult", "export"]
