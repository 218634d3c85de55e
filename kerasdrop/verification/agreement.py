"""Where the structure check and the numerical evidence disagree, say so; the verdict follows what the
served function actually does.

Structure models what Keras would run. The evidence is what `model(x)` did to each layer the
structure calls active: a Dropout-like layer in training mode draws random numbers (its seed state
advances), a BatchNormalization in training mode updates its moving statistics. Outputs alone are no
evidence: an untrained network can hide an active stochastic-depth Dropout below float resolution.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasdrop.verification import numerical, runtimes, structure
from kerasdrop.verification.report import Report


def _state(layer) -> list:
    return [np.array(variable.numpy()) for variable in layer.non_trainable_variables]


def layers_left_untouched(model, layers: list, inputs: dict) -> list[bool] | None:
    """Per layer: True when two `model(x)` calls left its random-seed state and statistics unchanged.

    Every variable is restored afterwards (a training-mode BatchNormalization's update is undone).
    None when the model could not be called.
    """
    saved = {id(layer): _state(layer) for layer in layers}
    try:
        for _ in range(2):
            runtimes.call_keras(model, inputs, None)
    except Exception:  # the numerical checks report the failure; there is no evidence here
        return None
    finally:
        after = {id(layer): _state(layer) for layer in layers}
        for layer in layers:
            for variable, value in zip(layer.non_trainable_variables, saved[id(layer)]):
                variable.assign(value)
    return [
        bool(saved[id(layer)])
        and all(np.array_equal(a, b) for a, b in zip(saved[id(layer)], after[id(layer)]))
        for layer in layers
    ]


def reconcile(report: Report, model, inputs: dict | None) -> None:
    """Settles structure errors against what `model(x)` did; notes numbers the structure cannot explain."""
    flagged = [
        index
        for index, finding in enumerate(report.findings)
        if finding.check == structure.CHECK and finding.severity == "error"
    ]
    numerical_errors = [finding for finding in report.errors if finding.check == numerical.CHECK]
    if flagged and inputs is not None:
        calls = {call.path: call.layer for call in structure.iter_layer_calls(model)}
        layers = [calls.get(report.findings[index].location) for index in flagged]
        untouched = layers_left_untouched(model, [layer for layer in layers if layer is not None], inputs)
        if not numerical_errors and untouched and None not in layers and all(untouched):
            _downgrade(report, flagged)
    elif numerical_errors and not any(
        finding.check == structure.CHECK and finding.severity != "info" for finding in report.findings
    ):
        report.add(
            structure.CHECK,
            "warning",
            report.target,
            "structure and numerical evidence disagree: no layer "
            "is active at inference by the model's structure, yet the served function fails the numerical "
            "checks; the verdict follows the numbers",
            "look for a layer whose call uses batch statistics or randomness whatever `training` says",
        )


def _downgrade(report: Report, flagged: list[int]) -> None:
    for index in flagged:
        finding = report.findings[index]
        report.findings[index] = dataclasses.replace(
            finding,
            severity="warning",
            message=f"{finding.message} — but the numbers disagree: under model(x) it draws no random numbers and "
            "updates no statistics (its state is unchanged), and the served function is repeatable and batch "
            "independent, so the verdict follows what it does",
        )
    report.add(
        structure.CHECK,
        "warning",
        report.target,
        f"structure and numerical evidence disagree on "
        f"{len(flagged)} layer call(s): the verdict follows what the served function does",
        "check the layers named above: their call may ignore `training` (a custom subclass?)",
    )
