"""`kerasdrop sweep`: one run per (rate, seed), a summary table and figure, finished runs reused."""

import json

import pytest

from kerasdrop.train import sweep as sweep_module
from kerasdrop.train.sweep import sweep

BASE = {"model": "mlp", "dataset": "synthetic", "epochs": 2, "batch_size": 32, "dense_units": [16]}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    return sweep(dict(BASE), rates=[0.0, 0.5], seeds=2, out=tmp_path_factory.mktemp("sweep"))


def test_sweep_trains_each_rate_and_seed(finished_sweep):
    out = finished_sweep.directory
    for rate in ("0", "0.5"):
        for seed in (0, 1):
            run = out / f"rate-{rate}" / f"seed-{seed}"
            assert (run / "metrics.json").is_file()
            assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2
    import tomllib

    saved = tomllib.loads((out / "rate-0.5" / "seed-1" / "recipe.toml").read_text())
    assert saved["model"]["dropout"] == 0.5 and saved["training"]["seed"] == 1


def test_sweep_json_has_mean_and_sd_per_rate(finished_sweep):
    summary = json.loads((finished_sweep.directory / "sweep.json").read_text())
    assert [entry["rate"] for entry in summary["rates"]] == [0.0, 0.5]
    for entry in summary["rates"]:
        gaps = [run["generalization_gap"] for run in entry["runs"]]
        assert len(gaps) == 2
        assert entry["mean"]["generalization_gap"] == pytest.approx(sum(gaps) / 2)
        assert entry["sd"]["generalization_gap"] >= 0
        assert len(entry["curves"]["val_accuracy"]) == 2


def test_sweep_writes_the_table_and_the_figure(finished_sweep):
    table = (finished_sweep.directory / "sweep.md").read_text()
    assert "| dropout | train acc | validation acc | gap (train − val) | test acc |" in table
    assert table.count("\n| 0 |") == 1 and table.count("\n| 0.5 |") == 1 and " ± " in table
    assert (finished_sweep.directory / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_finished_runs_are_reused(finished_sweep, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(sweep_module, "train", no_training)
    again = sweep(dict(BASE), rates=[0.0, 0.5], seeds=2, out=finished_sweep.directory)
    assert again.summary["rates"][1]["mean"] == finished_sweep.summary["rates"][1]["mean"]


@pytest.mark.parametrize("rates, seeds, argument", [([1.0], 1, "rates"), ([], 1, "rates"), ([0.1, 0.1], 1, "rates"), ([0.1], 0, "seeds")])
def test_bad_sweep_arguments(tmp_path, rates, seeds, argument):
    with pytest.raises(ValueError, match=f"^Invalid value received for argument `{argument}`"):
        sweep(dict(BASE), rates=rates, seeds=seeds, out=tmp_path)
