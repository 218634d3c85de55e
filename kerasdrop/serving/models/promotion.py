"""Promoting a version behind a models.config label (TF Serving's `version_labels`) only with evidence:
the labelled version and the candidate answer the same requests through the backend that serves them,
and the label moves only when they agree (and, given data, the candidate is not less accurate).

The requests replayed are the model's request logs (its `logging_config`, request_log.py) or, with
none, the candidate's warmup and golden requests. Moving the label and rolling it back: labels.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import TYPE_CHECKING

from kerasdrop.layout import GOLDEN_FILE, MODELS_CONFIG_FILE, WARMUP_PATH
from kerasdrop.serving.models.backends import load_backend
from kerasdrop.serving.models.labels import (
    PromotionError,
    check_loaded_by_policy,
    entry_of,
    read_config,
    served_versions,
)
from kerasdrop.serving.models.request_log import (
    log_files,
    log_settings,
    read_request_log,
)

# Defaults of the gate (`kerasdrop promote --min-agreement / --max-accuracy-drop`).
# Two classifiers that are each right on 97.5% of requests agree on at least 95% of them; a candidate
# that changes more answers than that is a different model, not a retrained one: look before moving.
DEFAULT_MIN_AGREEMENT = 0.95
# One point of test accuracy: less than the spread between seeds of the zoo's recipes on digits, more
# than a candidate that learned nothing (10 classes: ~90 points lower) could hide in.
DEFAULT_MAX_ACCURACY_DROP = 0.01
DEFAULT_MAX_REQUESTS = 1000  # the newest logged requests replayed: enough for agreement to 0.1%

if TYPE_CHECKING:  # numpy where used: `kerasdrop --help` reads promote's defaults from this module
    import numpy as np


@dataclasses.dataclass
class Comparison:
    """The evidence `kerasdrop promote` prints and gates on."""

    model: str
    label: str
    baseline: int
    candidate: int
    source: str  # where the replayed requests came from, in words
    requests: int = 0
    rows: int = 0  # rows with a top-1 answer from both versions
    agreeing: int = 0
    max_difference: float = 0.0
    max_difference_output: str = ""
    latency_ms: dict = dataclasses.field(default_factory=dict)  # {version: (p50, p99)}
    skipped: list = dataclasses.field(default_factory=list)  # signatures not compared, and why
    dataset: str | None = None
    accuracy: dict = dataclasses.field(default_factory=dict)  # {version: test accuracy}
    test_examples: int = 0
    discordant: tuple[int, int] = (0, 0)  # (baseline right only, candidate right only)
    p_value: float | None = None

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.rows if self.rows else None


def mcnemar_p_value(baseline_only: int, candidate_only: int) -> float:
    """Two-sided exact McNemar test: the discordant pairs as Binomial(n, 1/2), n = b + c; p is twice
    the smaller tail, at most 1. Computed in log space (lgamma), so any count is exact and fast."""
    n, k = baseline_only + candidate_only, min(baseline_only, candidate_only)
    if n == 0:
        return 1.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(value - top) for value in logs)
    return min(1.0, 2.0 * tail)


def top1(outputs: dict) -> np.ndarray | None:
    """The predicted class of each row: argmax of `probabilities` (or of the one 2-D float output),
    else a `*class_ids` output; None for a model without one (a regression)."""
    import numpy as np

    arrays = {key: np.asarray(value) for key, value in outputs.items()}
    scores = [
        key
        for key, value in arrays.items()
        if value.dtype.kind == "f" and value.ndim == 2 and value.shape[1] > 1
    ]
    if "probabilities" in scores or len(scores) == 1:
        return np.argmax(arrays["probabilities" if "probabilities" in scores else scores[0]], axis=-1)
    ids = sorted(
        key for key, value in arrays.items() if key.endswith("class_ids") and value.dtype.kind in "iu"
    )
    return arrays[ids[0]].reshape(len(arrays[ids[0]]), -1)[:, 0] if ids else None


# --- the requests to replay -------------------------------------------------------------------------


def logged_requests(config, name: str, config_dir: pathlib.Path, limit: int) -> tuple[list, str] | None:
    """`([(signature, inputs)], where from)`: the newest `limit` logged requests of `name`, or None."""
    import tensorflow as tf

    entry = entry_of(config, name)
    settings = (
        log_settings(name, entry.logging_config, config_dir) if entry.HasField("logging_config") else None
    )
    if settings is None:
        return None
    requests, files = [], log_files(settings.prefix)
    for path in reversed(files):
        for record in reversed(read_request_log(path)):
            request = record.predict_log.request
            if record.WhichOneof("log_type") == "predict_log" and request.model_spec.name == name:
                requests.append(
                    (
                        request.model_spec.signature_name or "serving_default",
                        {key: tf.make_ndarray(value) for key, value in request.inputs.items()},
                    )
                )
            if len(requests) == limit:
                break
        if len(requests) == limit:
            break
    if not requests:
        return None
    return requests[::-1], f"{len(requests)} logged requests from {settings.prefix}-*"


def warmup_requests(version_dir: pathlib.Path) -> tuple[list, str]:
    """The candidate's warmup requests and the golden requests golden.json names (no request log)."""
    from kerasdrop.exporting.warmup import predict_requests

    paths = [version_dir / WARMUP_PATH]
    golden = version_dir / GOLDEN_FILE
    if golden.is_file():
        try:
            named = json.loads(golden.read_text()).get("requests")
        except (OSError, ValueError, AttributeError):
            named = None
        if isinstance(named, str) and (version_dir / named).resolve() != paths[0].resolve():
            paths.append(version_dir / named)
    requests = [item for path in paths if path.is_file() for item in predict_requests(path)]
    if not requests:
        raise PromotionError(
            f"nothing to replay: the model logs no requests (no logging_config in {MODELS_CONFIG_FILE}, "
            f"or no log files yet) and {version_dir / WARMUP_PATH} does not exist"
        )
    return requests, (
        f"no request log: {len(requests)} warmup and golden requests of version "
        f"{version_dir.name} (not real traffic)"
    )


# --- comparing two versions -------------------------------------------------------------------------


def _timed(backend, signature: str, inputs: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    outputs = backend.run(signature, inputs)
    return outputs, time.perf_counter() - started


def _deterministic(backend, signature: str, inputs: dict) -> bool:
    from kerasdrop.verification.numerical import differences

    return differences(backend.run(signature, inputs), backend.run(signature, inputs))[2]


def replay(comparison: Comparison, baseline, candidate, requests: list) -> None:
    """Runs every request on both backends (alternating which goes first), filling agreement, the
    largest output difference and latency. A signature only one version serves, or a stochastic one
    (mc_dropout: its answers change on every call), is skipped and said so."""
    import numpy as np

    times = {comparison.baseline: [], comparison.candidate: []}
    usable: dict[str, bool] = {}
    for index, (signature, inputs) in enumerate(requests):
        if signature not in usable:
            served = signature in baseline.signature_names() and signature in candidate.signature_names()
            # (both run twice here: the check, and each backend's first call, untimed)
            usable[signature] = served and all(
                _deterministic(backend, signature, inputs) for backend in (baseline, candidate)
            )
            if not usable[signature]:
                why = "stochastic: answers change on every call" if served else "not served by both versions"
                comparison.skipped.append(f"{signature} ({why})")
        if not usable[signature]:
            continue
        order = [(comparison.baseline, baseline), (comparison.candidate, candidate)]
        answers = {}
        for version, backend in order if index % 2 == 0 else order[::-1]:
            answers[version], seconds = _timed(backend, signature, inputs)
            times[version].append(seconds * 1e3)
        _compare(comparison, answers[comparison.baseline], answers[comparison.candidate])
        comparison.requests += 1
    comparison.latency_ms = {
        version: (float(np.percentile(values, 50)), float(np.percentile(values, 99)))
        for version, values in times.items()
        if values
    }


def _compare(comparison: Comparison, old: dict, new: dict) -> None:
    import numpy as np

    for key in sorted(set(old) & set(new)):  # float outputs: a class id's "difference" means nothing
        a, b = np.asarray(old[key]), np.asarray(new[key])
        if a.shape == b.shape and a.dtype.kind == "f" and b.dtype.kind == "f" and a.size:
            difference = float(np.max(np.abs(a.astype("float64") - b.astype("float64"))))
            if difference > comparison.max_difference or not comparison.max_difference_output:
                comparison.max_difference, comparison.max_difference_output = difference, key
    old_top, new_top = top1(old), top1(new)
    if old_top is not None and new_top is not None and old_top.shape == new_top.shape:
        comparison.rows += int(old_top.size)
        comparison.agreeing += int(np.sum(old_top == new_top))


def measure_accuracy(comparison: Comparison, baseline, candidate, dataset: str) -> None:
    """Each version's top-1 accuracy on the test split of `dataset` (any `kerasdrop train --dataset`)
    through serving_default, and McNemar's paired test of the difference."""
    import numpy as np

    from kerasdrop.data import load_dataset

    signature = baseline.signature_defs["serving_default"]
    if len(signature.inputs) != 1:
        raise PromotionError(
            f"--data needs a serving_default with one image input; it has {sorted(signature.inputs)}"
        )
    input_name = next(iter(signature.inputs))
    right = {comparison.baseline: [], comparison.candidate: []}
    for images, labels in load_dataset(dataset, batch_size=256).test:
        labels = np.asarray(labels).reshape(-1)
        for version, backend in ((comparison.baseline, baseline), (comparison.candidate, candidate)):
            predicted = top1(backend.run("serving_default", {input_name: np.asarray(images, np.float32)}))
            if predicted is None:
                raise PromotionError(
                    "--data needs a classifier: serving_default has no probabilities or class ids"
                )
            right[version].append(predicted.reshape(-1) == labels)
    old, new = (np.concatenate(right[v]) for v in (comparison.baseline, comparison.candidate))
    comparison.dataset, comparison.test_examples = dataset, int(old.size)
    comparison.accuracy = {comparison.baseline: float(old.mean()), comparison.candidate: float(new.mean())}
    comparison.discordant = (int(np.sum(old & ~new)), int(np.sum(~old & new)))
    comparison.p_value = mcnemar_p_value(*comparison.discordant)


def refusals(comparison: Comparison, min_agreement: float, max_accuracy_drop: float) -> list[str]:
    """Why the gate refuses the candidate; empty when it may be promoted."""
    reasons = []
    agreement = comparison.agreement
    if agreement is None:
        if min_agreement > 0:
            reasons.append(
                "no request gave both versions a top-1 answer to compare (--min-agreement 0 skips this)"
            )
    elif agreement < min_agreement:
        reasons.append(f"top-1 agreement {agreement:.1%} is below --min-agreement {min_agreement:.1%}")
    if comparison.accuracy:
        drop = comparison.accuracy[comparison.baseline] - comparison.accuracy[comparison.candidate]
        if drop > max_accuracy_drop:
            reasons.append(
                f"test accuracy drops by {drop * 100:.2f} points, more than --max-accuracy-drop "
                f"{max_accuracy_drop * 100:.2f}"
            )
    return reasons


def render(comparison: Comparison) -> str:
    """The table `kerasdrop promote` prints."""
    c = comparison
    old, new = f"version {c.baseline} ({c.label})", f"version {c.candidate} (candidate)"
    lines = [
        f"promote {c.model}: label {c.label!r} version {c.baseline} -> {c.candidate}",
        f"replayed: {c.source}",
    ] + [f"skipped: {item}" for item in c.skipped]
    rows = [("", old, new), ("requests replayed", str(c.requests), "")]
    rows.append(
        (
            "top-1 agreement",
            f"{c.agreement:.2%} ({c.agreeing} of {c.rows} rows)"
            if c.agreement is not None
            else "n/a (no classification output)",
            "",
        )
    )
    rows.append(
        (
            "largest output difference",
            f"{c.max_difference:.3g} ({c.max_difference_output})" if c.max_difference_output else "n/a",
            "",
        )
    )
    for name, index in (("latency p50 (ms)", 0), ("latency p99 (ms)", 1)):
        rows.append(
            (
                name,
                *(
                    f"{c.latency_ms[v][index]:.2f}" if v in c.latency_ms else "n/a"
                    for v in (c.baseline, c.candidate)
                ),
            )
        )
    if c.accuracy:
        rows.append(
            (
                f"test accuracy ({c.test_examples})",
                f"{c.accuracy[c.baseline]:.4f}",
                f"{c.accuracy[c.candidate]:.4f}",
            )
        )
        discordant = f"only {c.label} right: {c.discordant[0]}, only candidate right: {c.discordant[1]}"
        rows.append(("McNemar exact p-value", f"{c.p_value:.3g} ({discordant})", ""))
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows if row[2])  # a value spanning both columns does not widen it
    for label, left, right in rows:
        lines.append(f"{label:<{first}}  {left:<{second}}  {right}".rstrip())
    return "\n".join(lines)


def plan_promotion(repo: pathlib.Path, config_path: pathlib.Path, name: str, label: str, candidate: int):
    """`(baseline version, versions, models.config entry)`; the baseline is the label's version, or
    for a new label the newest version below the candidate."""
    _, config = read_config(config_path)
    entry = entry_of(config, name)
    versions = served_versions(repo, name)
    if candidate not in versions:
        raise PromotionError(
            f"version {candidate} of {name!r} not found in {repo} (it has {sorted(versions)})"
        )
    if label in entry.version_labels:
        baseline = entry.version_labels[label]
    else:
        older = [version for version in versions if version < candidate]
        if not older:
            raise PromotionError(
                f"label {label!r} of {name!r} is new and no version below {candidate} exists to compare with"
            )
        baseline = max(older)
    if baseline not in versions:
        raise PromotionError(f"label {label!r} points at version {baseline}, which is not in {repo / name}")
    if baseline == candidate:
        raise PromotionError(f"label {label!r} of {name!r} already points at version {candidate}")
    check_loaded_by_policy(entry, candidate, versions)
    return baseline, versions, entry


def evaluate(
    repo: pathlib.Path,
    config_path: pathlib.Path,
    name: str,
    label: str,
    candidate: int,
    *,
    backend: str = "tf",
    data: str | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> Comparison:
    """Loads both versions on `backend` and compares them on the replayed requests (and `data`)."""
    baseline, versions, _ = plan_promotion(repo, config_path, name, label, candidate)
    _, config = read_config(config_path)
    found = logged_requests(config, name, pathlib.Path(config_path).parent, max_requests)
    requests, source = found if found is not None else warmup_requests(versions[candidate])
    comparison = Comparison(name, label, baseline, candidate, source)
    old, new = (_load(backend, versions[version], name, version) for version in (baseline, candidate))
    replay(comparison, old, new, requests)
    if data is not None:
        measure_accuracy(comparison, old, new, data)
    return comparison


def _load(backend: str, path: pathlib.Path, name: str, version: int):
    try:
        return load_backend(backend, path)
    except Exception as error:  # a corrupt or partial version: say which, as the server's log does
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PromotionError(
            f"version {version} of {name!r} cannot be loaded on the {backend} backend: {first}"
        ) from None
