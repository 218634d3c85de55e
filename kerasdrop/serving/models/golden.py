"""Readiness that means correct answers: a version's warmup requests replayed on the backend that will
serve it, and the answers compared with the `golden.json` that `kerasdrop export` published with it.

A version without golden.json (any TF Serving repository) is ready once its warmup requests replay
without error. With `--require-verification`, a version also needs a passing `verification.json`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from kerasdrop.errors import KerasdropError
from kerasdrop.layout import GOLDEN_FILE, VERIFICATION_FILE, WARMUP_PATH, read_golden, warmup_path


class GoldenMismatch(KerasdropError):
    """A version's answers differ from its golden outputs (or its golden.json cannot be used)."""


class VerificationRequired(KerasdropError):
    """`--require-verification` and the version has no passing verification.json."""


@dataclasses.dataclass(frozen=True)
class Golden:
    requests: pathlib.Path
    signature: str
    outputs: list  # one {output name: nested list} per golden request
    dtypes: dict
    atol: float
    rtol: float


def _field(document: dict, key: str, kind, path: pathlib.Path):
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise GoldenMismatch(
            f"{path}: {key!r} must be a {getattr(kind, '__name__', kind)}; received {value!r:.80}"
        )
    return value


def _tolerance(document: dict, path: pathlib.Path) -> tuple[float, float]:
    tolerance = _field(document, "tolerance", dict, path)
    values = [tolerance.get(key) for key in ("atol", "rtol")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise GoldenMismatch(
            f"{path}: 'tolerance' must hold non-negative numbers atol and rtol; received {tolerance}"
        )
    return float(values[0]), float(values[1])


def golden_for(version_dir: pathlib.Path, backend: str) -> Golden | None:
    """The golden answers for `backend` (its `backends` entry when there is one), or None without
    golden.json (read by layout.read_golden, which owns the file's format)."""
    version_dir = pathlib.Path(version_dir)
    document = read_golden(version_dir)
    if document is None:
        return None
    path = version_dir / GOLDEN_FILE
    entry = document
    backends = document.get("backends") or {}
    if isinstance(backends, dict) and isinstance(backends.get(backend), dict):
        entry = backends[backend]
    atol, rtol = _tolerance(entry, path)
    outputs = _field(entry, "outputs", list, path)
    if not all(isinstance(item, dict) for item in outputs):
        raise GoldenMismatch(f"{path}: 'outputs' must be a list of {{output name: values}} objects")
    dtypes = document.get("dtypes") if isinstance(document.get("dtypes"), dict) else {}
    requests = version_dir / document.get("requests", WARMUP_PATH)
    return Golden(requests, document.get("signature", "serving_default"), outputs, dtypes, atol, rtol)


def require_passing_verification(version_dir: pathlib.Path) -> None:
    path = pathlib.Path(version_dir) / VERIFICATION_FILE
    if not path.is_file():
        raise VerificationRequired(
            f"{path} not found; --require-verification serves only versions that `kerasdrop export` verified"
        )
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VerificationRequired(f"{path} cannot be read as JSON: {error}") from None
    if not isinstance(report, dict) or report.get("ok") is not True:
        summary = report.get("summary") if isinstance(report, dict) else None
        raise VerificationRequired(
            f'{path} does not report a passing verification (expected "ok": true; '
            f"received ok={report.get('ok') if isinstance(report, dict) else None!r}, "
            f"summary {summary})"
        )


def replay(requests: pathlib.Path, backend, signature: str | None = None) -> list[dict]:
    """Runs every PredictRequest of a warmup file whose signature the backend serves; returns the
    outputs of those on `signature`, in file order."""
    from kerasdrop.exporting.warmup import predict_requests

    answers = []
    for name, inputs in predict_requests(requests):
        if name in backend.signature_names():
            outputs = backend.run(name, inputs)
            if name == signature:
                answers.append(outputs)
    return answers


def _difference(key: str, expected, actual: np.ndarray, dtype, golden: Golden) -> str | None:
    """Why `actual` does not match `expected`, or None when it does."""
    try:
        expected = np.asarray(expected, dtype=dtype or None)
    except (TypeError, ValueError) as error:
        return f"output {key!r}: golden values cannot be read as {dtype or 'an array'} ({error})"
    if expected.shape != actual.shape:
        return f"output {key!r}: shape {list(actual.shape)}, golden shape {list(expected.shape)}"
    if actual.dtype.kind == "f":
        a, e = actual.astype("float64"), expected.astype("float64")
        if np.allclose(a, e, atol=golden.atol, rtol=golden.rtol, equal_nan=True):
            return None
        worst = float(np.nanmax(np.abs(a - e))) if a.size else 0.0
        return (
            f"output {key!r}: max |difference| {worst:.6g} exceeds atol {golden.atol:g} + rtol {golden.rtol:g} "
            "x |golden|"
        )
    if actual.dtype.kind in "iub":
        unequal = int(np.count_nonzero(actual.astype("int64") != expected.astype("int64")))
        if not unequal:
            return None
        worst = int(np.max(np.abs(actual.astype("int64") - expected.astype("int64"))))
        return (
            f"output {key!r}: {unequal} of {actual.size} integer values differ (max |difference| {worst}); "
            "integers must match exactly"
        )
    equal = actual.reshape(-1).tolist() == [
        v.encode() if isinstance(v, str) else v for v in expected.reshape(-1)
    ]
    return None if equal else f"output {key!r}: values differ from the golden ones"


def check(golden: Golden, answers: list[dict]) -> None:
    """Raises GoldenMismatch naming the first request and output that differ, and by how much."""
    if len(answers) != len(golden.outputs):
        raise GoldenMismatch(
            f"{golden.requests.name} holds {len(answers)} {golden.signature} requests the backend "
            f"answered; {GOLDEN_FILE} has outputs for {len(golden.outputs)}"
        )
    for index, (expected, actual) in enumerate(zip(golden.outputs, answers)):
        for key, values in expected.items():
            if key not in actual:
                raise GoldenMismatch(
                    f"golden request {index}: output {key!r} missing from the answer "
                    f"(it has {sorted(actual)})"
                )
            reason = _difference(key, values, np.asarray(actual[key]), golden.dtypes.get(key), golden)
            if reason:
                raise GoldenMismatch(f"golden request {index} ({golden.signature}): {reason}")


def warm_up(version_dir: pathlib.Path, backend, backend_name: str) -> Golden | None:
    """Replays the version's warmup requests on `backend`; with golden.json, checks the answers."""
    version_dir = pathlib.Path(version_dir)
    golden = golden_for(version_dir, backend_name)
    if golden is None:
        requests = warmup_path(version_dir)
        if requests.is_file():
            replay(requests, backend)
        return None
    if not golden.requests.is_file():
        raise GoldenMismatch(f"{golden.requests} (the golden requests) not found")
    if golden.signature not in backend.signature_names():
        raise GoldenMismatch(
            f"golden signature {golden.signature!r} is not served by the {backend_name} backend "
            f"(it serves {backend.signature_names()})"
        )
    check(golden, replay(golden.requests, backend, golden.signature))
    return golden
