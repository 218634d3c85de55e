"""The int8 gate's rule (`judge_int8`) on probabilities made for it: passes when int8 matches float32,
and each criterion refuses on its own with its figure and the flag that sets its limit."""

import numpy as np
import pytest

from kerasdrop.errors import InvalidArgumentError
from kerasdrop.exporting.int8 import Int8Limits, check_limits, judge_int8

LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def _confident(labels, p=0.8):
    """Rows putting `p` on the true class and the rest evenly on the others (accuracy 1, calibrated-ish)."""
    rows = np.full((len(labels), 3), (1 - p) / 2)
    rows[np.arange(len(labels)), labels] = p
    return rows


def _failed(verdict):
    return [row["criterion"] for row in verdict.criteria if not row["passed"]]


def test_int8_equal_to_float32_within_noise_passes_every_criterion():
    fp32 = _confident(LABELS)
    int8 = fp32 + np.array([1e-3, -1e-3, 0.0])
    verdict = judge_int8(fp32, int8, LABELS)
    assert verdict.passed and not verdict.failures and not _failed(verdict)
    assert verdict.figures["max_probability_error"] == pytest.approx(1e-3)
    assert verdict.figures["drop_points"] == 0.0


def test_probability_error_alone_refuses():
    # Row 0 moves from 0.8 to 0.6 on its true class (still the top class; NLL and ECE barely move).
    fp32 = _confident(LABELS)
    int8 = fp32.copy()
    int8[0] = [0.6, 0.3, 0.1]
    verdict = judge_int8(fp32, int8, LABELS, Int8Limits(max_nll_increase=1.0, max_ece_increase=1.0))
    assert _failed(verdict) == ["max_probability_error"]
    assert verdict.failures == [
        "a class probability moves by up to 0.2000, more than the 0.1 allowed (--int8-max-probability-error)"
    ]


def test_nll_increase_alone_refuses():
    # Every row loses 0.05 of its true class: each probability moves by 0.05 (under 0.1), the NLL by 0.065.
    fp32 = _confident(LABELS)
    int8 = _confident(LABELS, 0.75)
    verdict = judge_int8(fp32, int8, LABELS, Int8Limits(max_ece_increase=1.0))
    assert _failed(verdict) == ["nll_increase"]
    increase = np.log(0.8) - np.log(0.75)
    assert verdict.figures["nll_increase"] == pytest.approx(increase)
    assert verdict.failures[0].startswith(f"NLL rises by {increase:.4f} nats")
    assert verdict.failures[0].endswith("more than the 0.05 allowed (--int8-max-nll-increase)")


def test_ece_increase_alone_refuses():
    # Right answers whose confidence falls from 0.95 to 0.88: the NLL rises 0.076 (under a 0.1 limit),
    # the ECE from 0.05 to 0.12.
    fp32 = _confident(LABELS, 0.95)
    int8 = _confident(LABELS, 0.88)
    verdict = judge_int8(fp32, int8, LABELS, Int8Limits(max_nll_increase=0.1))
    assert _failed(verdict) == ["ece_increase"]
    assert verdict.figures["ece_increase"] == pytest.approx(0.07)
    assert verdict.failures == [
        "ECE rises by 0.0700 (0.0500 fp32 -> 0.1200 int8), more than the 0.02 allowed "
        "(--int8-max-ece-increase)"
    ]


def test_probabilities_in_1_over_255_steps_that_miss_a_sum_of_one_are_refused():
    # The ONNX int8 model before the softmax was kept in float32: 0.7647 (195/255) where float32 said 0.7907.
    fp32 = np.array([[0.7907, 0.1093, 0.1]] * 8)
    int8 = np.round(fp32 * 255) / 255
    int8[:, 0] = 195 / 255
    verdict = judge_int8(fp32, int8, np.zeros(8, dtype=int), Int8Limits(max_ece_increase=1.0))
    assert "probability_sum_error" in _failed(verdict)
    assert any(failure.startswith("int8 probabilities sum to 1 only within") for failure in verdict.failures)


def test_accuracy_drop_is_still_a_criterion():
    fp32 = _confident(LABELS)
    int8 = fp32.copy()
    int8[0] = [0.4, 0.45, 0.15]  # one of eight rows now wrong: 12.5 points
    verdict = judge_int8(
        fp32, int8, LABELS, Int8Limits(max_probability_error=1.0, max_nll_increase=1.0, max_ece_increase=1.0)
    )
    assert _failed(verdict) == ["accuracy_drop"]
    assert (
        "drops by 12.50 points (100.00% fp32 -> 87.50% int8), more than the 0.5 allowed (--int8-max-drop)"
        in verdict.failures[0]
    )


def test_gate_inputs_must_be_the_same_rows_and_limits_are_checked():
    with pytest.raises(InvalidArgumentError, match="argument `int8_probabilities`. Expected the float32"):
        judge_int8(_confident(LABELS), _confident(LABELS)[:4], LABELS)
    with pytest.raises(
        InvalidArgumentError, match="argument `int8_max_probability_error`. Expected a probability"
    ):
        check_limits(limits={"max_probability_error": 1.5})
    with pytest.raises(InvalidArgumentError, match="argument `int8_max_nll_increase`. Expected nats >= 0"):
        check_limits(limits=Int8Limits(max_nll_increase=-0.1))
    with pytest.raises(InvalidArgumentError, match="argument `int8_max_ece_increase`"):
        check_limits(limits={"max_ece_increase": float("nan")})
    with pytest.raises(
        InvalidArgumentError, match=r"argument `int8_limits`. Expected an Int8Limits or a dict of"
    ):
        check_limits(limits={"max_error": 0.1})
    with pytest.raises(InvalidArgumentError, match="argument `int8_max_drop`. Expected accuracy points"):
        check_limits(max_drop=-1, limits={"max_drop": 1.0})
    assert check_limits(None, {"max_ece_increase": 0.1}) == Int8Limits(max_ece_increase=0.1)
    assert check_limits(2.0, Int8Limits(max_drop=1.0)) == Int8Limits(max_drop=2.0)


def test_cli_help_states_the_gate_defaults():
    import dataclasses

    from kerasdrop.cli import build_parser

    export = build_parser()._subparsers._group_actions[0].choices["export"]
    helps = {option: action.help for action in export._actions for option in action.option_strings}
    for field in dataclasses.fields(Int8Limits):
        flag = "--int8-" + field.name.replace("_", "-")
        assert helps[flag].endswith(f"{field.default:g})"), (flag, helps[flag])
