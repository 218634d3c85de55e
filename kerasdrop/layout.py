"""The model repository's layout: every file name that exporting writes and serving reads, once,
and the readers of the files both sides share (golden.json, models.config, the warmup path).

A repository is TF Serving's: `<repo>/<name>/<version>/` with a SavedModel, plus kerasdrop's own
files beside it (TF Serving ignores extra files). Nothing outside this module spells these names
(tests/test_layout.py checks it).
"""

from __future__ import annotations

import json
import pathlib

from kerasdrop.errors import KerasdropError

# TF Serving's own files.
SAVED_MODEL_FILE = "saved_model.pb"
VARIABLES_DIR = "variables"
ASSETS_EXTRA_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"  # PredictionLog records TF Serving replays on load
WARMUP_PATH = f"{ASSETS_EXTRA_DIR}/{WARMUP_FILE}"
MODELS_CONFIG_FILE = "models.config"  # a ModelServerConfig (--model_config_file) at the repository root

# The other formats, where their own servers look for them.
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
TFLITE_FILE = "model.tflite"  # where TF Serving's --prefer_tflite_model looks
OPENVINO_XML_FILE = "model.xml"  # OpenVINO IR, as OpenVINO Model Server reads a version directory
OPENVINO_BIN_FILE = "model.bin"

# kerasdrop's evidence, published with each version.
VERIFICATION_FILE = "verification.json"
GOLDEN_FILE = "golden.json"
MODEL_CARD_JSON = "model_card.json"
MODEL_CARD_MARKDOWN = "MODEL_CARD.md"
# Class names, one a line, line i naming class id i (the label-file convention of TF Lite metadata and
# TF Hub image classifiers); under assets.extra/, which TF Serving copies with the version and ignores.
LABELS_FILE = "labels.txt"
LABELS_PATH = f"{ASSETS_EXTRA_DIR}/{LABELS_FILE}"
GOLDEN_FORMAT = 1  # golden.json's "format": a reader refuses any other

# The default models.config of `kerasdrop export`: beside the repository, so `--repo elsewhere` never
# writes into the current directory, and TF Serving finds it in the mounted repository.
MODELS_CONFIG_BESIDE_REPO = f"{{repo}}/{MODELS_CONFIG_FILE}"


class RepositoryFileError(KerasdropError, ValueError):
    """A file of the model repository that cannot be read as its format says; the message names it."""


class ModelsConfigError(RepositoryFileError):
    """A models.config that cannot be used; the message names the file and line."""


def warmup_path(version_dir) -> pathlib.Path:
    """Where a version keeps the warmup requests TF Serving replays on load (and golden.json's requests)."""
    return pathlib.Path(version_dir) / WARMUP_PATH


def read_golden(version_dir) -> dict | None:
    """A version's `golden.json` (what the verified model answered to its warmup requests), or None
    when it has none (any TF Serving repository). Raises RepositoryFileError when the file is not a
    JSON object of this format, or names requests outside the version directory."""
    version_dir = pathlib.Path(version_dir)
    path = version_dir / GOLDEN_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RepositoryFileError(f"{path} cannot be read as JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != GOLDEN_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise RepositoryFileError(f"{path}: expected 'format': {GOLDEN_FORMAT}; received {found!r}")
    requests = version_dir / document.get("requests", WARMUP_PATH)
    if version_dir.resolve() not in requests.resolve().parents:
        raise RepositoryFileError(
            f"{path}: 'requests' must name a file inside the version directory; "
            f"received {document.get('requests')!r}"
        )
    return document


def read_models_config(path):
    """A models.config (TF Serving's --model_config_file) as the official ModelServerConfig proto.
    Raises ModelsConfigError naming the file, and the line where it does not parse."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelsConfigError(f"Cannot read models config {path}: {error}") from None
    try:
        return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        # ParseError's message starts "line:column : ..."; say it as file:line like a compiler.
        line = error.GetLine() if hasattr(error, "GetLine") else "?"
        raise ModelsConfigError(f"{path}:{line}: not a valid ModelServerConfig: {error}") from None


# Request logs and promotions (serving/models/request_log.py, serving/models/promotion.py).
REQUEST_LOG_SUFFIX = ".tfrecord"  # <logging_config filename_prefix>-<pid>-<n>.tfrecord: PredictionLog records
# Beside models.config: each label move, one JSON line, so `kerasdrop promote --rollback` can undo it.
PROMOTION_HISTORY_FILE = "promotions.jsonl"
