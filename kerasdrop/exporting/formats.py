"""The export formats, one module per format behind one list, as keras/src/export/ dispatches them.

Each module has `write(model, staging)`, which writes its files (names from kerasdrop/layout.py) into a
staging version directory that already holds the verified SavedModel.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence

from kerasdrop import layout


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    name: str
    # kerasdrop.exporting.<module>: its write(model, staging) writes `files` (savedmodel's is written
    # first by the pipeline itself, with its optional signatures, and the others convert from it).
    module: str
    files: tuple[str, ...]
    runtime: str  # the runner the verifier compares it as (parity, verification.json)
    extra: str | None = None  # the pip extra that installs its runtime, when not a core dependency

    def write(self, model, staging) -> None:
        importlib.import_module(self.module).write(model, staging)


FORMATS = {
    "savedmodel": ExportFormat(
        "savedmodel",
        "kerasdrop.exporting.savedmodel",
        (layout.SAVED_MODEL_FILE, layout.VARIABLES_DIR + "/"),
        "savedmodel",
    ),
    "onnx": ExportFormat("onnx", "kerasdrop.exporting.onnx", (layout.ONNX_FILE,), "onnxruntime"),
    "litert": ExportFormat("litert", "kerasdrop.exporting.litert", (layout.TFLITE_FILE,), "litert", "litert"),
    "openvino": ExportFormat(
        "openvino",
        "kerasdrop.exporting.openvino",
        (layout.OPENVINO_XML_FILE, layout.OPENVINO_BIN_FILE),
        "openvino",
        "openvino",
    ),
}
# What `kerasdrop export` writes when no format is named: the two whose runtimes are core dependencies
# and that TF Serving and `kerasdrop serve` load. LiteRT and OpenVINO are opt-in: their runtimes are
# optional extras, and each adds its conversion and a full re-verification to every export.
DEFAULT_FORMATS = ("savedmodel", "onnx")


def check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    """The formats, validated: known names, savedmodel among them (the version directory TF Serving reads)."""
    from kerasdrop._validation import invalid_argument

    if isinstance(formats, str):
        formats = [name.strip() for name in formats.split(",") if name.strip()]
    formats = tuple(dict.fromkeys(formats))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise invalid_argument(
            "formats", f"a comma-separated subset of {', '.join(FORMATS)}", ",".join(formats)
        )
    if "savedmodel" not in formats:
        raise invalid_argument(
            "formats",
            "a list including savedmodel (a TF Serving version directory needs "
            f"{layout.SAVED_MODEL_FILE}; the other formats are written beside it)",
            ",".join(formats),
        )
    for name in formats:
        if FORMATS[name].extra is not None:
            _check_runtime_installed(name)
    return formats


def _check_runtime_installed(name: str) -> None:
    """An export refuses, before any work, a format whose runtime cannot re-verify what it writes."""
    from kerasdrop._validation import invalid_argument
    from kerasdrop.verification.runtimes import RuntimeMissingError, import_runtime

    try:
        import_runtime(name)
    except RuntimeMissingError as error:
        raise invalid_argument(
            "formats",
            f"formats whose runtime is installed ({error}; kerasdrop never publishes a file it has not run)",
            name,
        ) from None
