"""`kerasdrop calibrate`: calibration and MC averaging on a run's own test split, written into the run."""

import json

import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.training import calibration
from kerasdrop.training.build import recipe_datasets
from kerasdrop.training.studies import _arrays, _deterministic, calibrate


def test_calibrate_writes_files_and_metrics(calibrated_run):
    run, results = calibrated_run
    for name in ("calibration.json", "mc_averaging.json", "reliability.png", "mc_averaging.png"):
        assert (run.directory / name).is_file(), name
    assert (run.directory / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((run.directory / "metrics.json").read_text())
    assert metrics["test_accuracy"] == run.metrics["test_accuracy"]  # nothing that was there is lost
    saved = json.loads((run.directory / "calibration.json").read_text())
    assert metrics["calibration"]["methods"] == saved["methods"] == results["calibration"]["methods"]
    assert set(saved["methods"]) == {"deterministic", "mc_dropout", "temperature_scaled"}
    assert metrics["calibration"]["temperature"] > 0 and metrics["calibration"]["mc_samples"] == 8


def test_deterministic_calibration_is_recomputable_from_the_model(calibrated_run):
    run, results = calibrated_run
    test_images, test_labels = _arrays(recipe_datasets(run.recipe).test)
    probabilities = _deterministic(run.model, test_images)
    expected = calibration.calibration_metrics(probabilities, test_labels)
    assert results["calibration"]["methods"]["deterministic"] == pytest.approx(expected, abs=1e-6)
    # The deterministic model's accuracy is the one training measured on the same test split.
    assert expected["accuracy"] == pytest.approx(run.metrics["test_accuracy"], abs=1e-6)
    # Temperature scaling never changes the predicted class.
    assert results["calibration"]["methods"]["temperature_scaled"]["accuracy"] == expected["accuracy"]


def test_mc_averaging_has_each_k_with_sd_and_weight_scaling(calibrated_run):
    run, results = calibrated_run
    averaging = results["mc_averaging"]
    assert [row["k"] for row in averaging["ks"]] == [1, 2, 8]
    for row in averaging["ks"]:
        assert len(row["errors"]) == 3
        assert row["error_mean"] == pytest.approx(np.mean(row["errors"]))
        assert row["error_sd"] == pytest.approx(np.std(row["errors"], ddof=1))
    assert averaging["weight_scaling_error"] == pytest.approx(1 - run.metrics["test_accuracy"], abs=1e-6)


def test_calibrate_reproduces_its_figures(calibrated_run):
    run, results = calibrated_run
    again = calibrate(run.directory, mc_samples=8, ks=(1, 2, 8), repeats=3)
    assert again["calibration"]["methods"] == results["calibration"]["methods"]
    assert [row["errors"] for row in again["mc_averaging"]["ks"]] == [
        row["errors"] for row in results["mc_averaging"]["ks"]
    ]


def test_calibrate_refuses_a_directory_without_a_run(tmp_path, capsys):
    with pytest.raises(ValueError, match="^Invalid value received for argument `run_dir`"):
        calibrate(tmp_path)
    assert main(["calibrate", str(tmp_path)]) == 2
    assert "finished run directory" in capsys.readouterr().err
