"""`kerasdrop sweep`: one run per (rate, seed), a summary table and figure, finished runs reused."""

import json

import pytest

from kerasdrop.training import sweep as sweep_module
from kerasdrop.training.artifacts import RUN_FILES
from kerasdrop.training.sweep import sweep

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


@pytest.mark.parametrize(
    "rates, seeds, argument",
    [([1.0], 1, "rates"), ([], 1, "rates"), ([0.1, 0.1], 1, "rates"), ([0.1], 0, "seeds")],
)
def test_bad_sweep_arguments(tmp_path, rates, seeds, argument):
    with pytest.raises(ValueError, match=f"^Invalid value received for argument `{argument}`"):
        sweep(dict(BASE), rates=rates, seeds=seeds, out=tmp_path)


@pytest.fixture(scope="module")
def datasize_sweep(tmp_path_factory):
    # One process: the runs then reproduce bit for bit when trained again alone in this process.
    return sweep(
        dict(BASE),
        rates=[0.0, 0.5],
        seeds=2,
        train_sizes=[20, None],
        out=tmp_path_factory.mktemp("datasize"),
        workers=1,
    )


@pytest.mark.slow
def test_datasize_sweep_trains_every_size_rate_and_seed_on_fixed_splits(datasize_sweep):
    import tomllib

    out = datasize_sweep.directory
    tests = set()
    for size in ("20", "all"):
        for rate in ("0", "0.5"):
            for seed in (0, 1):
                run = out / f"size-{size}" / f"rate-{rate}" / f"seed-{seed}"
                recipe = tomllib.loads((run / "recipe.toml").read_text())
                assert recipe["data"].get("train_size") == (20 if size == "20" else None)
                assert recipe["data"]["split_seed"] == 0 and recipe["training"]["seed"] == seed
                dataset = json.loads((run / "metrics.json").read_text())["dataset"]
                assert dataset["num_train"] == (20 if size == "20" else dataset["num_train"])
                tests.add((dataset["num_validation"], dataset["num_test"]))
                # As complete as a run of `kerasdrop train`, although the runs of a rate share one model.
                assert all((run / name).is_file() for name in RUN_FILES), sorted(
                    p.name for p in run.iterdir()
                )
                assert recipe["provenance"]["seed"] == seed and "tensorflow" in recipe["provenance"]
    assert len(tests) == 1  # every run validated and tested on the same whole splits
    assert datasize_sweep.summary["compiled_models"] == 2  # one per rate, reused by every size and seed


@pytest.mark.slow
def test_a_study_run_trained_again_alone_from_its_recipe_measures_the_same(datasize_sweep, tmp_path):
    import keras
    import numpy as np

    from kerasdrop.training import train
    from kerasdrop.training.run import Run

    # The last run of rate 0.5: trained on the model that the study compiled for its first run.
    run_dir = datasize_sweep.directory / "size-all" / "rate-0.5" / "seed-1"
    in_study = Run.load(run_dir)
    alone = train(run_dir / "recipe.toml", out=tmp_path / "alone", verbose=0)
    assert alone.history == in_study.history
    for key in ("test_accuracy", "test_loss", "train_accuracy", "validation_accuracy", "best_epoch"):
        assert alone.metrics[key] == in_study.metrics[key], key
    for name in (
        "model.keras",
        "best.keras",
    ):  # best.keras: written once in the study, at each improvement alone
        study_weights = keras.saving.load_model(run_dir / name).get_weights()
        alone_weights = keras.saving.load_model(tmp_path / "alone" / name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(study_weights, alone_weights)), name


@pytest.mark.slow
def test_a_study_in_worker_processes_matches_one_process_and_reproduces_from_its_recipe(
    datasize_sweep, tmp_path
):
    import os
    import subprocess
    import sys
    import tomllib

    from kerasdrop.training.run import Run

    in_workers = sweep(
        dict(BASE), rates=[0.0, 0.5], seeds=2, train_sizes=[20, None], out=tmp_path / "study", workers=2
    )
    assert in_workers.summary["worker_processes"] == 2
    assert in_workers.summary["compiled_models"] >= 2  # one per rate in each worker that trained it
    one_process = datasize_sweep.summary
    for workers_entry, one_entry in zip(in_workers.summary["sizes"], one_process["sizes"]):
        for workers_rate, one_rate in zip(workers_entry["rates"], one_entry["rates"]):
            # One thread per op instead of TensorFlow's default changes float rounding, not the result.
            assert workers_rate["mean"]["test_accuracy"] == pytest.approx(
                one_rate["mean"]["test_accuracy"], abs=0.05
            )
    # A worker's run records its threads, and trained again alone from its recipe it measures the same.
    run_dir = tmp_path / "study" / "size-all" / "rate-0.5" / "seed-1"
    saved = tomllib.loads((run_dir / "recipe.toml").read_text())
    assert saved["training"]["cpu_threads"] == 1
    assert saved["provenance"]["cpu"]["tensorflow_threads"] == {"intra_op": 1, "inter_op": 1}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TF_NUM_")}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kerasdrop.cli import main; sys.exit(main(sys.argv[1:]))",
            "train",
            str(run_dir / "recipe.toml"),
            "--out",
            str(tmp_path / "alone"),
            "--quiet",
        ],
        env=environment,
        check=True,
        capture_output=True,
    )
    alone = Run.load(tmp_path / "alone")
    assert alone.history == Run.load(run_dir).history


@pytest.mark.slow
def test_datasize_summary_table_and_figure(datasize_sweep):
    summary = json.loads((datasize_sweep.directory / "sweep.json").read_text())
    assert summary["study"] == "datasize" and [e["train_size"] for e in summary["sizes"]] == ["20", "all"]
    assert summary["sizes"][0]["num_train"] == 20 and summary["sizes"][1]["num_train"] > 20
    for entry in summary["sizes"]:
        assert [rate["rate"] for rate in entry["rates"]] == [0.0, 0.5]
        for rate in entry["rates"]:
            accuracies = [run["test_accuracy"] for run in rate["runs"]]
            assert rate["mean"]["test_accuracy"] == pytest.approx(sum(accuracies) / 2)
    table = (datasize_sweep.directory / "sweep.md").read_text()
    assert (
        "| train examples | test acc, dropout 0 | gap, dropout 0 | test acc, dropout 0.5 | gap, dropout 0.5 |"
        in table
    )
    assert "\n| 20 | " in table and " (all) | " in table
    assert datasize_sweep.table() + "\n" == table  # what `kerasdrop sweep --train-sizes` prints
    assert (datasize_sweep.directory / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("sizes", [[], [0], [10, 10], ["all"]])
def test_bad_train_sizes(tmp_path, sizes):
    with pytest.raises(ValueError, match="^Invalid value received for argument `train_sizes`"):
        sweep(dict(BASE), rates=[0.0], train_sizes=sizes, out=tmp_path)


def test_cli_train_sizes_flag_refuses_bad_sizes(capsys):
    from kerasdrop.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--rates", "0", "--out", "x", "--train-sizes", "50,lots"])
    assert exit_info.value.code == 2
    assert "Expected comma-separated integers >= 1 and/or 'all'" in capsys.readouterr().err


@pytest.mark.slow
def test_datasize_runs_skip_the_backup_and_an_interrupted_run_is_trained_again(datasize_sweep):
    out = datasize_sweep.directory
    run = out / "size-20" / "rate-0" / "seed-0"
    assert not (run / "backup").exists()
    finished = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()  # as if killed before the end
    lines = []
    again = sweep(
        dict(BASE), rates=[0.0, 0.5], seeds=2, train_sizes=[20, None], out=out, progress=lines.append
    )
    runs = [line for line in lines if line.startswith("run ")]
    assert runs[0].startswith("run 1/8: size 20, rate 0, seed 0: training 2 epochs")
    assert len(runs) == 8 and sum("finished earlier, reused" in line for line in runs) == 7
    retrained = json.loads((run / "metrics.json").read_text())
    # Seeded and deterministic: the retrained run measures what the first one did.
    assert retrained["test_accuracy"] == finished["test_accuracy"]
    assert (
        again.summary["sizes"][0]["rates"][0]["mean"]
        == datasize_sweep.summary["sizes"][0]["rates"][0]["mean"]
    )
