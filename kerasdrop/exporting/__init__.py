"""Export: verify, then publish SavedModel + ONNX into a TF Serving model repository.

One module per format (`savedmodel.py`, `onnx.py`) behind `pipeline.export`, which refuses to
publish anything the verifier has not passed.
"""

from kerasdrop.exporting.pipeline import FORMATS, ExportRefusedError, ExportResult, export

__all__ = ["FORMATS", "ExportRefusedError", "ExportResult", "export"]
