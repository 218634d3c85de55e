"""The inference-mode verifier: structure, graph scan, numerical and cross-runtime checks, one report.

`verify(path_or_model) -> Report`; `kerasdrop verify PATH` exits 0 clean, 1 findings, 2 unusable input.
"""

from kerasdrop.verify.api import verify, verify_keras, verify_onnx, verify_saved_model
from kerasdrop.verify.report import CheckRun, Finding, Report, UnusableInputError

__all__ = ["CheckRun", "Finding", "Report", "UnusableInputError", "verify", "verify_keras", "verify_onnx",
           "verify_saved_model"]

from kerasdrop._callable_module import make_module_callable  # noqa: E402

# `kerasdrop.verify(...)` calls `verify`; `kerasdrop.verify.<name>` still reaches the package.
make_module_callable(__name__, verify)
