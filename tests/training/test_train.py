"""`kerasdrop.training`: the run directory, reproducibility, resume, and refusing bad runs."""

import json
import pathlib

import numpy as np
import pytest

from kerasdrop.errors import RunDirectoryError, TrainingDivergedError
from kerasdrop.training import RecipeError, Run, load_recipe, train
from kerasdrop.training.artifacts import RUN_FILES

FAST = {
    "model": "mlp",
    "dataset": "synthetic",
    "epochs": 3,
    "batch_size": 32,
    "dense_units": [32],
    "dropout": 0.2,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return train(dict(FAST), out=tmp_path_factory.mktemp("runs") / "run", verbose=0)


def test_run_directory_holds_everything_a_run_needs(finished_run):
    directory = finished_run.directory
    assert sorted(path.name for path in directory.iterdir()) == sorted(RUN_FILES)
    assert (directory / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((directory / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(history[0])


def test_recipe_toml_is_fully_resolved_with_versions(finished_run):
    import tomllib

    import keras
    import tensorflow as tf

    saved = tomllib.loads((finished_run.directory / "recipe.toml").read_text())
    assert saved["training"]["seed"] == 0 and saved["training"]["epochs"] == 3
    assert saved["model"]["dense_units"] == [32] and saved["model"]["dropout"] == 0.2
    assert (
        saved["provenance"]["tensorflow"] == tf.__version__
        and saved["provenance"]["keras"] == keras.__version__
    )
    assert saved["provenance"]["dataset"]["input_shape"] == [16, 16, 1]
    assert load_recipe(finished_run.directory / "recipe.toml") == finished_run.recipe


def test_metrics_match_the_saved_model(finished_run):
    from kerasdrop.data import load_dataset

    metrics = json.loads((finished_run.directory / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs_completed"] == 3
    assert metrics["generalization_gap"] == pytest.approx(
        metrics["train_accuracy"] - metrics["validation_accuracy"]
    )
    assert metrics["test_accuracy"] > 0.9, "the synthetic task is learnable in 3 epochs"
    model = finished_run.model
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(load_dataset("synthetic", batch_size=32).test, verbose=0)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert finished_run.best_model.get_layer("fc1_dropout").rate == pytest.approx(0.2)


def test_same_seed_gives_the_same_run(tmp_path):
    first = train(dict(FAST, epochs=2), out=tmp_path / "a", verbose=0)
    second = train(dict(FAST, epochs=2), out=tmp_path / "b", verbose=0)
    assert first.history == second.history
    for left, right in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(left, right)
    third = train(dict(FAST, epochs=2, seed=1), out=tmp_path / "c", verbose=0)
    assert third.history != first.history


class _Interrupt:
    """A callback that kills training after a given epoch, as a crash or Ctrl-C would."""

    def __new__(cls, after_epoch):
        import keras

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == after_epoch:
                    raise KeyboardInterrupt(f"interrupted after epoch {epoch}")

        return Interrupt()


def test_resume_continues_from_the_last_completed_epoch(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(dict(FAST, epochs=4), out=out, verbose=0, callbacks=[_Interrupt(after_epoch=1)])
    assert (out / "backup").is_dir() and not (out / "metrics.json").exists()
    epochs_seen = []

    import keras

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    run = train(out=out, resume=True, verbose=0, callbacks=[Record()])
    assert epochs_seen == [2, 3], "resume must start after the last completed epoch"
    assert [row["epoch"] for row in run.history] == [0, 1, 2, 3]
    assert run.metrics["epochs_completed"] == 4
    assert not (out / "backup").exists(), "the backup is removed once the run finishes"


def test_resume_refuses_a_directory_without_a_run(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="holds no run to resume"):
        train(out=tmp_path, resume=True, verbose=0)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_resume_refuses_a_finished_run(finished_run):
    with pytest.raises(RunDirectoryError, match="already finished"):
        train(out=finished_run.directory, resume=True, verbose=0)


def test_resume_refuses_a_different_recipe(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(dict(FAST, epochs=3), out=out, verbose=0, callbacks=[_Interrupt(after_epoch=0)])
    with pytest.raises(RecipeError, match="with its own recipe.toml"):
        train(out=out, resume=True, overrides=[("training.epochs", 9)], verbose=0)


def test_existing_run_directory_is_never_overwritten(finished_run):
    before = {path.name: path.stat().st_mtime_ns for path in finished_run.directory.iterdir()}
    with pytest.raises(RunDirectoryError, match="already exists and is not empty; nothing in it was changed"):
        train(dict(FAST), out=finished_run.directory, verbose=0)
    assert {path.name: path.stat().st_mtime_ns for path in finished_run.directory.iterdir()} == before


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(RunDirectoryError, match="Cannot write the run directory"):
        train(dict(FAST), out=blocker / "run", verbose=0)


def test_run_load_reads_a_finished_run(finished_run):
    loaded = Run.load(finished_run.directory)
    assert loaded.metrics["test_accuracy"] == finished_run.metrics["test_accuracy"]
    assert loaded.recipe == finished_run.recipe


def test_default_run_directory_is_named_after_model_and_dataset(tmp_path):
    run = train(dict(FAST, epochs=1), runs_dir=str(tmp_path), verbose=0)
    assert run.directory.parent == pathlib.Path(tmp_path)
    assert run.directory.name.startswith("mlp-synthetic-")


def test_nan_loss_stops_training_with_a_clear_error(tmp_path):
    with pytest.raises(TrainingDivergedError, match="loss became NaN"):
        train(dict(FAST, optimizer="sgd", lr=1e12, epochs=3), out=tmp_path / "run", verbose=0)
    assert (tmp_path / "run" / "history.json").is_file()


def test_mixed_bfloat16_training_saves_float32_models(tmp_path):
    import keras

    run = train(dict(FAST, epochs=2, precision="mixed_bfloat16"), out=tmp_path / "run", verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32", "the global policy is restored"
    for model in (run.model, run.best_model):
        assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert run.metrics["test_accuracy"] > 0.9


def test_mirrored_strategy_trains(tmp_path):
    run = train(dict(FAST, epochs=1, strategy="mirrored"), out=tmp_path / "run", verbose=0)
    assert run.metrics["epochs_completed"] == 1
