"""The model repository's layout: every file name that exporting writes and serving reads, once.

A repository is TF Serving's: `<repo>/<name>/<version>/` with a SavedModel, plus kerasdrop's own
files beside it (TF Serving ignores extra files). Nothing outside this module spells these names.
"""

from __future__ import annotations

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

# Request logs and promotions (serving/models/request_log.py, serving/models/promotion.py).
REQUEST_LOG_SUFFIX = ".tfrecord"  # <logging_config filename_prefix>-<pid>-<n>.tfrecord: PredictionLog records
# Beside models.config: each label move, one JSON line, so `kerasdrop promote --rollback` can undo it.
PROMOTION_HISTORY_FILE = "promotions.jsonl"
