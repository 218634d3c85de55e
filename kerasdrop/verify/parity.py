"""Check 4: the written artefacts agree with the Keras model, and with each other.

Keras vs reloaded SavedModel vs ONNX Runtime, on probe batches of two sizes (so the dynamic batch
dimension is exercised), within stated tolerances. `class_ids` must match exactly except where the
top two probabilities are closer than the tolerance.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from kerasdrop.verify.report import CheckRun, Report

CHECK = "parity"
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
BATCH_SIZES = (1, 7)


def check_parity(runtimes: dict[str, Callable], images_by_size: dict[int, np.ndarray], report: Report) -> None:
    """`runtimes`: name -> function(images) -> {output name: array}; the first is the reference."""
    started = time.perf_counter()
    names = list(runtimes)
    reference_name = names[0]
    for size, images in images_by_size.items():
        reference = runtimes[reference_name](images)
        for name in names[1:]:
            outputs = runtimes[name](images)
            missing = sorted(set(reference) - set(outputs))
            if missing:
                report.add(CHECK, "error", f"{name} batch {size}", f"outputs {missing} missing (has {sorted(outputs)})",
                           "export with the same output names in every format")
                continue
            for key, expected in reference.items():
                actual = np.asarray(outputs[key])
                if actual.shape != expected.shape:
                    report.add(CHECK, "error", f"{name} {key} batch {size}", f"shape {actual.shape} differs from "
                               f"{reference_name}'s {expected.shape}", "re-export; check the dynamic batch dimension")
                    continue
                if np.issubdtype(expected.dtype, np.integer):
                    probabilities = reference.get("probabilities")
                    mismatch = actual != expected
                    if probabilities is not None and mismatch.any():
                        top_two = np.sort(probabilities, axis=-1)[..., -2:]
                        mismatch &= (top_two[..., 1] - top_two[..., 0]) > TOLERANCE["atol"]
                    if mismatch.any():
                        report.add(CHECK, "error", f"{name} {key} batch {size}", f"{int(mismatch.sum())} of "
                                   f"{mismatch.size} predicted classes differ from {reference_name}",
                                   "re-export; the converted graph computes something else")
                    continue
                difference = float(np.max(np.abs(actual.astype("float64") - expected.astype("float64"))))
                if not np.allclose(actual, expected, **TOLERANCE):
                    report.add(CHECK, "error", f"{name} {key} batch {size}", f"differs from {reference_name} by up to "
                               f"{difference:.3g} (tolerance atol {TOLERANCE['atol']}, rtol {TOLERANCE['rtol']})",
                               "re-export; the converted graph computes something else")
        report.add(CHECK, "info", f"batch {size}", f"{', '.join(names[1:])} agree with {reference_name}")
    report.tolerances["parity"] = dict(TOLERANCE)
    report.checks.append(CheckRun(CHECK, " vs ".join(names), time.perf_counter() - started,
                                  f"batches of {', '.join(str(size) for size in images_by_size)}"))
