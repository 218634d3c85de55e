"""`golden.json`: what the verified model answered to its own warmup requests, published with the version.

A server replays the warmup requests and calls a version ready only when its answers match these
(floats within the verifier's TOLERANCE, integers exactly). Format: docs/export.md, "Golden requests";
read back by `kerasdrop.layout.read_golden`.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from kerasdrop._files import atomic_write_text
from kerasdrop.exporting.warmup import predict_requests
from kerasdrop.layout import GOLDEN_FILE, GOLDEN_FORMAT, WARMUP_PATH, warmup_path


def warmup_inputs(version_dir: pathlib.Path, signature: str) -> list[dict[str, np.ndarray]]:
    """The inputs of each warmup record that is a PredictRequest on `signature`, in file order."""
    return [inputs for name, inputs in predict_requests(warmup_path(version_dir)) if name == signature]


def _as_json(outputs: dict) -> dict:
    # float32.tolist() gives the doubles equal to the float32 values: JSON round-trips them exactly.
    return {name: np.asarray(value).tolist() for name, value in outputs.items()}


def golden_outputs(run, requests: list[dict[str, np.ndarray]]) -> tuple[list[dict], dict]:
    """`(outputs per request as JSON lists, {output: dtype name})` of `run({input: array}) -> {output: array}`."""
    outputs, dtypes = [], {}
    for inputs in requests:
        answer = {name: np.asarray(value) for name, value in run(inputs).items()}
        dtypes.update({name: value.dtype.name for name, value in answer.items()})
        outputs.append(_as_json(answer))
    return outputs, dtypes


def saved_model_runner(version_dir: pathlib.Path, signature: str):
    """The signature as the `tf` serving backend runs it (the TF2 SavedModel loader)."""
    from kerasdrop.verification import runtimes

    loaded = runtimes.load_saved_model(version_dir)
    return runtimes.tf2_signature_runtime(loaded.signatures[signature])


def write_golden(
    version_dir: pathlib.Path, run, *, signature: str = "serving_default", backends: dict | None = None
) -> pathlib.Path:
    """Writes `golden.json` into `version_dir` (a staging directory: it is published with the version).

    Args:
        version_dir: the directory holding `assets.extra/tf_serving_warmup_requests`.
        run: the verified servable, `{input: array} -> {output: array}` (the SavedModel's `signature`).
        signature: the signature whose warmup requests are replayed.
        backends: `{backend name: {"file": ..., "run": runner, "tolerance": {...}}}` for serving
            backends that give other numbers (int8 ONNX); their outputs are computed here.
    """
    from kerasdrop.verification.numerical import TOLERANCE

    requests = warmup_inputs(version_dir, signature)
    outputs, dtypes = golden_outputs(run, requests)
    document = {
        "format": GOLDEN_FORMAT,
        "requests": WARMUP_PATH,
        "signature": signature,
        "outputs": outputs,
        "dtypes": dtypes,
        "tolerance": dict(TOLERANCE),
    }
    if backends:
        document["backends"] = {
            name: {
                "file": entry["file"],
                "outputs": golden_outputs(entry["run"], requests)[0],
                "tolerance": dict(entry["tolerance"]),
            }
            for name, entry in backends.items()
        }
    return atomic_write_text(pathlib.Path(version_dir) / GOLDEN_FILE, json.dumps(document) + "\n")
