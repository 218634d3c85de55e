"""Run identity: a sweep, a study and `train --resume` reuse or continue only runs of the same fingerprint."""

import json
import tomllib

import pytest

from kerasdrop.cli import main
from kerasdrop.training import train
from kerasdrop.training.identity import FINGERPRINT_FILE, RunMismatchError
from kerasdrop.training.sweep import sweep
from tests.cli.test_train import FAST_FLAGS

BASE = {"model": "mlp", "dataset": "synthetic", "epochs": 2, "batch_size": 32, "dense_units": [8]}


def _interrupt_after(epoch_number):
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == epoch_number:
                raise KeyboardInterrupt

    return Interrupt()


@pytest.fixture(scope="module")
def mlp_sweep(tmp_path_factory):
    return sweep(dict(BASE), rates=[0.0], seeds=1, out=tmp_path_factory.mktemp("sweep"))


def test_every_run_records_its_fingerprint_from_the_start(mlp_sweep):
    fingerprint = json.loads((mlp_sweep.directory / "rate-0" / "seed-0" / FINGERPRINT_FILE).read_text())
    assert fingerprint["model.name"] == "mlp" and fingerprint["training.epochs"] == 2
    assert fingerprint["split.seed"] == 0 and fingerprint["dataset.source"] == "synthetic"
    assert "code.kerasdrop" in fingerprint and "data.data_dir" not in fingerprint


def test_a_sweep_of_another_model_into_the_same_out_is_refused_in_one_line(mlp_sweep, capsys, monkeypatch):
    before = {path: path.stat().st_mtime_ns for path in mlp_sweep.directory.rglob("*")}
    code = main(
        [
            "sweep",
            "--model",
            "lenet5",
            "--dataset",
            "synthetic",
            "--no-recipe",
            "--rates",
            "0",
            "--epochs",
            "1",
            "--out",
            str(mlp_sweep.directory),
            "--quiet",
        ]
    )
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "model.name is 'mlp' there, 'lenet5' now" in line and "--overwrite" in line and "--out" in line
    assert {path: path.stat().st_mtime_ns for path in mlp_sweep.directory.rglob("*")} == before


def test_a_sweep_with_other_epochs_is_refused_and_overwrite_trains_it_again(tmp_path):
    out = tmp_path / "sweep"
    sweep(dict(BASE), rates=[0.0], seeds=1, out=out)
    with pytest.raises(RunMismatchError, match="training.epochs is 2 there, 3 now"):
        sweep(dict(BASE, epochs=3), rates=[0.0], seeds=1, out=out)
    again = sweep(dict(BASE, epochs=3), rates=[0.0], seeds=1, out=out, overwrite=True)
    assert again.summary["epochs"] == 3
    assert json.loads((out / "rate-0" / "seed-0" / "metrics.json").read_text())["epochs_completed"] == 3


@pytest.mark.slow
def test_a_data_size_study_reuses_only_runs_of_its_epochs_and_split(tmp_path):
    out = tmp_path / "study"
    study = dict(rates=[0.0], train_sizes=[20], out=out, workers=1)
    sweep(dict(BASE, seed=1), seeds=1, **study)
    with pytest.raises(RunMismatchError, match="training.epochs is 2 there, 1 now"):
        sweep(dict(BASE, seed=1, epochs=1), seeds=1, **study)
    # --seed 0 --seeds 2 reaches the seed-1 run, which was split with seed 1: not its whole fixed split.
    with pytest.raises(RunMismatchError, match="data.split_seed is 1 there, 0 now"):
        sweep(dict(BASE, seed=0), seeds=2, **study)
    assert not (out / "size-20" / "rate-0" / "seed-0").exists(), "refused before anything was trained"


def test_resume_refuses_a_hand_edited_recipe(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(dict(BASE, epochs=3, dropout=0.2), out=out, verbose=0, callbacks=[_interrupt_after(1)])
    original = (out / "recipe.toml").read_text()
    (out / "recipe.toml").write_text(original.replace("dropout = 0.2", "dropout = 0.6"))
    with pytest.raises(RunMismatchError, match=r"model.dropout was 0.2, is 0.6 now; a resumed run keeps"):
        train(out=out, resume=True, verbose=0)
    (out / "recipe.toml").write_text(original.replace("seed = 0", "seed = 5"))
    with pytest.raises(RunMismatchError, match="training.seed was 0, is 5 now"):
        train(out=out, resume=True, verbose=0)
    assert tomllib.loads(original)["training"]["seed"] == 0
    (out / "recipe.toml").write_text(original)
    assert train(out=out, resume=True, verbose=0).metrics["epochs_completed"] == 3


def test_resume_refusal_is_one_cli_line(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(dict(BASE, epochs=3), out=out, verbose=0, callbacks=[_interrupt_after(1)])
    (out / "recipe.toml").write_text((out / "recipe.toml").read_text().replace("epochs = 3", "epochs = 30"))
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kerasdrop train: error: --resume:") and "training.epochs was 3, is 30 now" in line


def test_train_overwrite_replaces_a_run_and_only_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    train(dict(BASE, epochs=1), out=out, verbose=0)
    command = ["train", "--no-recipe", *FAST_FLAGS, "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(command) == 2
    assert "--overwrite replaces it" in capsys.readouterr().err
    assert main([*command, "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert (
        main(
            [
                "train",
                "--no-recipe",
                *FAST_FLAGS,
                "--epochs",
                "1",
                "--out",
                str(mine),
                "--quiet",
                "--overwrite",
            ]
        )
        == 2
    )
    assert (mine / "notes.txt").read_text() == "keep"


def test_a_run_from_before_fingerprints_is_judged_by_its_recipe(mlp_sweep, monkeypatch):
    from kerasdrop.training import sweep as sweep_module

    run_dir = mlp_sweep.directory / "rate-0" / "seed-0"
    saved = (run_dir / FINGERPRINT_FILE).read_text()
    (run_dir / FINGERPRINT_FILE).unlink()
    try:
        monkeypatch.setattr(
            sweep_module, "train", lambda *a, **k: pytest.fail("a matching run was trained again")
        )
        sweep(dict(BASE), rates=[0.0], seeds=1, out=mlp_sweep.directory)  # same settings: reused
        with pytest.raises(RunMismatchError, match=r"model.dense_units is \[8\] there, \[16\] now"):
            sweep(dict(BASE, dense_units=[16]), rates=[0.0], seeds=1, out=mlp_sweep.directory)
    finally:
        (run_dir / FINGERPRINT_FILE).write_text(saved)
