"""Calibration metrics against values computed by hand on small fixed examples, and temperature fitting."""

import math

import numpy as np
import pytest

from kerasdrop.training import calibration

# Four examples, three classes. Top-class confidences 0.7, 0.62, 0.5, 0.81 fall in four different
# of the 15 bins (0.7 -> (10/15, 11/15], 0.62 -> (9/15, 10/15], 0.5 -> (7/15, 8/15], 0.81 -> (12/15, 13/15]);
# the first and third are right, the second (predicts 0, is 1) and fourth (predicts 0, is 2) wrong.
PROBABILITIES = [[0.7, 0.2, 0.1], [0.62, 0.28, 0.10], [0.2, 0.5, 0.3], [0.81, 0.09, 0.10]]
LABELS = [0, 1, 1, 2]


def test_negative_log_likelihood_by_hand():
    expected = -(math.log(0.7) + math.log(0.28) + math.log(0.5) + math.log(0.10)) / 4  # = 1.156343...
    assert calibration.negative_log_likelihood(PROBABILITIES, LABELS) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(1.156343, abs=1e-6)


def test_brier_score_by_hand():
    # (.3² + .2² + .1²) + (.62² + .72² + .1²) + (.2² + .5² + .3²) + (.81² + .09² + .9²) = 0.14 + 0.9128 + 0.38 + 1.4742
    assert calibration.brier_score(PROBABILITIES, LABELS) == pytest.approx(2.907 / 4, abs=1e-12)


def test_ece_one_example_per_bin_by_hand():
    # Each bin holds one example: ECE = mean |correct − confidence| = (.3 + .62 + .5 + .81) / 4.
    assert calibration.expected_calibration_error(PROBABILITIES, LABELS) == pytest.approx(0.5575, abs=1e-12)


def test_ece_averages_within_a_bin_by_hand():
    # 0.71 (right) and 0.72 (wrong) share bin (10/15, 11/15]: accuracy .5, confidence .715;
    # 0.95 (right) is alone in (14/15, 1]. ECE = 2/3 · .215 + 1/3 · .05 = 0.16.
    probabilities = [[0.71, 0.29], [0.72, 0.28], [0.95, 0.05]]
    assert calibration.expected_calibration_error(probabilities, [0, 1, 0]) == pytest.approx(0.16, abs=1e-12)
    rows = calibration.reliability_bins(probabilities, [0, 1, 0])
    assert len(rows) == 15 and [row["count"] for row in rows].count(0) == 13
    assert (
        rows[10]["count"] == 2
        and rows[10]["accuracy"] == 0.5
        and rows[10]["confidence"] == pytest.approx(0.715)
    )


def test_confidence_on_a_bin_boundary_goes_to_the_lower_bin():
    rows = calibration.reliability_bins([[0.6, 0.4]], [0])  # 0.6 = 9/15: bin (8/15, 9/15]
    assert rows[8]["count"] == 1


def test_a_perfectly_calibrated_and_a_certain_correct_model():
    assert calibration.expected_calibration_error([[1.0, 0.0], [0.0, 1.0]], [0, 1]) == 0.0
    assert calibration.brier_score([[1.0, 0.0], [0.0, 1.0]], [0, 1]) == 0.0
    # Certain and wrong: NLL stays finite (probability floored at 1e-12).
    assert calibration.negative_log_likelihood([[1.0, 0.0]], [1]) == pytest.approx(-math.log(1e-12))


def test_temperature_one_is_the_identity_and_fitting_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(calibration.temperature_scaled(PROBABILITIES, 1.0), PROBABILITIES, atol=1e-12)
    logits = rng.normal(0, 3, (20000, 5))
    true_temperature = 2.5
    labels = np.array([rng.choice(5, p=row) for row in calibration.softmax(logits / true_temperature)])
    overconfident = calibration.softmax(logits)  # the labels were drawn at T=2.5: these are overconfident
    fitted = calibration.fit_temperature(overconfident, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    scaled = calibration.temperature_scaled(overconfident, fitted)
    assert calibration.negative_log_likelihood(scaled, labels) < calibration.negative_log_likelihood(
        overconfident, labels
    )
    assert calibration.expected_calibration_error(scaled, labels) < calibration.expected_calibration_error(
        overconfident, labels
    )


@pytest.mark.parametrize(
    "probabilities, labels, argument",
    [
        ([0.5, 0.5], [0], "probabilities"),
        ([[0.5, 0.5]], [0, 1], "probabilities"),
        ([[0.5, 0.5]], [2], "labels"),
    ],
)
def test_bad_shapes_and_labels_are_refused(probabilities, labels, argument):
    with pytest.raises(ValueError, match=f"^Invalid value received for argument `{argument}`"):
        calibration.calibration_metrics(probabilities, labels)
