"""Check 4: the runtimes that serve an artefact agree with each other.

Keras vs the TF2 SavedModel loader vs TF Serving's TF1 Session path vs ONNX Runtime, on probe
batches of two sizes (so the dynamic batch dimension is exercised), within stated tolerances. Every
output is compared; non-float outputs exactly, except `class_ids` where the top two probabilities
are closer than the tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from kerasdrop.verification.numerical import TOLERANCE, ProbeFailed, call, differences
from kerasdrop.verification.report import CheckRun, Report

CHECK = "parity"
BATCH_SIZES = (1, 7)


def _class_mismatch(actual, expected, probabilities) -> int:
    mismatch = actual != expected
    if probabilities is not None and mismatch.any() and probabilities.shape[:-1] == mismatch.shape:
        top_two = np.sort(probabilities, axis=-1)[..., -2:]
        mismatch &= (top_two[..., 1] - top_two[..., 0]) > TOLERANCE["atol"]
    return int(mismatch.sum())


def _scores_of(key: str):
    """The output whose argmax an integer output is: `probabilities` for `class_ids`, `X` for `X_class_ids`."""
    if key == "class_ids":
        return "probabilities"
    return key.removesuffix("_class_ids") if key.endswith("_class_ids") else None


def _compare(name: str, reference_name: str, reference: dict, outputs: dict, size, report: Report) -> None:
    missing = sorted(set(reference) - set(outputs))
    if missing:
        report.add(
            CHECK,
            "error",
            f"{name} batch {size}",
            f"outputs {missing} missing (has {sorted(outputs)})",
            "export with the same output names in every format",
        )
        return
    for key, expected in reference.items():
        actual = np.asarray(outputs[key])
        if actual.shape != expected.shape:
            report.add(
                CHECK,
                "error",
                f"{name} {key} batch {size}",
                f"shape {actual.shape} differs from {reference_name}'s {expected.shape}",
                "re-export; check the dynamic batch dimension",
            )
        elif np.issubdtype(expected.dtype, np.integer) and np.issubdtype(actual.dtype, np.integer):
            mismatched = _class_mismatch(actual, expected, reference.get(_scores_of(key)))
            if mismatched:
                report.add(
                    CHECK,
                    "error",
                    f"{name} {key} batch {size}",
                    f"{mismatched} of {actual.size} values differ from {reference_name}",
                    "re-export; the converted graph computes something else",
                )
        else:
            _, difference, close = differences({key: expected}, {key: actual})
            if not close:
                report.add(
                    CHECK,
                    "error",
                    f"{name} {key} batch {size}",
                    f"differs from {reference_name} by "
                    f"{difference:.3g} (tolerance atol {TOLERANCE['atol']}, rtol {TOLERANCE['rtol']}; non-float "
                    "outputs exactly)",
                    "re-export; the converted graph computes something else",
                )


def check_parity(
    runtimes: dict[str, Callable], inputs_by_size: dict, report: Report, *, location: str = ""
) -> None:
    """`runtimes`: name -> function(inputs) -> {output name: array}; the first is the reference."""
    started = time.perf_counter()
    names = list(runtimes)
    reference_name = names[0]
    prefix = f"{location} " if location else ""
    for size, inputs in inputs_by_size.items():
        try:
            reference = call(runtimes[reference_name], inputs)
            for name in names[1:]:
                _compare(
                    f"{prefix}{name}", reference_name, reference, call(runtimes[name], inputs), size, report
                )
        except ProbeFailed as failure:
            report.add(
                CHECK,
                "error",
                f"{prefix}batch {size}",
                f"a runtime raised on probes: {failure}",
                "make every runtime accept inputs of the signature's dtypes and shapes",
            )
            continue
        report.add(
            CHECK, "info", f"{prefix}batch {size}", f"{', '.join(names[1:])} agree with {reference_name}"
        )
    report.tolerances["parity"] = dict(TOLERANCE)
    report.checks.append(
        CheckRun(
            CHECK,
            f"{prefix}{' vs '.join(names)}",
            time.perf_counter() - started,
            f"batches of {', '.join(str(size) for size in inputs_by_size)}",
        )
    )
