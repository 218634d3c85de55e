"""Where the structure check and the numerical evidence disagree, say so; the verdict follows the numbers.

Structure models what Keras would run; the numbers are what the served function did. Both agreeing
is the usual case; when they do not, the report names the disagreement instead of hiding one side.
"""

from __future__ import annotations

import dataclasses

from kerasdrop.verification import numerical, structure
from kerasdrop.verification.report import Report


def reconcile(report: Report, served_differences: list[float | None]) -> None:
    """Settles structure errors against the Keras numerical checks already in `report`.

    `served_differences`: per probe magnitude, how far `model(x)` was from its inference twin (None:
    not compared). Structure errors are downgraded to warnings only on the strongest evidence: every
    numerical check passed and `model(x)` equals its twin exactly (difference 0) at every magnitude,
    i.e. the layer the structure check calls active changes nothing the served function returns.
    """
    structure_errors = [index for index, finding in enumerate(report.findings)
                        if finding.check == structure.CHECK and finding.severity == "error"]
    numerical_errors = [finding for finding in report.errors if finding.check == numerical.CHECK]
    exact = bool(served_differences) and all(difference == 0.0 for difference in served_differences)
    if structure_errors and not numerical_errors and exact:
        for index in structure_errors:
            finding = report.findings[index]
            report.findings[index] = dataclasses.replace(
                finding, severity="warning",
                message=f"{finding.message} — but the numbers disagree: called as model(x) and with training=False "
                        "it is repeatable, batch independent and equal to its inference twin (difference 0) on every "
                        "probe, so the verdict follows what the served function does")
        report.add(structure.CHECK, "warning", report.target, f"structure and numerical evidence disagree on "
                   f"{len(structure_errors)} layer call(s): the verdict follows the numbers",
                   "check the layers named above: their call may ignore `training` (a custom subclass?)")
    elif numerical_errors and not any(finding.check == structure.CHECK and finding.severity != "info"
                                      for finding in report.findings):
        report.add(structure.CHECK, "warning", report.target, "structure and numerical evidence disagree: no layer "
                   "is active at inference by the model's structure, yet the served function fails the numerical "
                   "checks; the verdict follows the numbers",
                   "look for a layer whose call uses batch statistics or randomness whatever `training` says")
