"""Export: verify, then publish SavedModel + ONNX into a TF Serving model repository.

One module per format (`savedmodel.py`, `onnx.py`) behind `pipeline.export`, which refuses to
publish anything the verifier has not passed.
"""

from kerasdrop.export.pipeline import FORMATS, ExportRefusedError, ExportResult, export

__all__ = ["FORMATS", "ExportRefusedError", "ExportResult", "export"]

from kerasdrop._callable_module import make_module_callable  # noqa: E402

# `kerasdrop.export(...)` calls `export`; `kerasdrop.export.<name>` still reaches the package.
make_module_callable(__name__, export)
