"""The inference-mode verifier: structure, graph scan, numerical and cross-runtime checks, one report.

`verify(path_or_model) -> Report`; `kerasdrop verify PATH` exits 0 clean, 1 findings, 2 unusable input,
3 graph only (no runtime could execute it, or its runtime is not installed).

One module per check (structure, graph, onnx_graph, litert_graph and openvino_graph, numerical and
signatures, parity, draws), what they feed (probes/) and run on (runtimes), the report, and api.verify
over them. Imports only kerasdrop's error types and file names (layout; it judges artefacts from
anyone); exporting and the CLI import it.
"""

from kerasdrop.verification.api import (
    verify,
    verify_keras,
    verify_litert,
    verify_onnx,
    verify_openvino,
    verify_saved_model,
)
from kerasdrop.verification.report import CheckRun, Finding, Report, UnusableInputError

__all__ = [
    "CheckRun",
    "Finding",
    "Report",
    "UnusableInputError",
    "verify",
    "verify_keras",
    "verify_litert",
    "verify_onnx",
    "verify_openvino",
    "verify_saved_model",
]
