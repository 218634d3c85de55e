"""`kerasdrop train` and `sweep` as a user meets them: Ctrl-C, failed starts, progress, the verdict line."""

import json
import re
import shlex

from kerasdrop.cli import main
from kerasdrop.cli.training import accuracy_verdict

FAST_FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32", "--dense-units", "16"]


def _interrupt_after_epoch(monkeypatch, epoch_number):
    """Ctrl-C as the user presses it: after `epoch_number` epochs are written to history.csv."""
    import keras

    original = keras.callbacks.CSVLogger.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == epoch_number:
            raise KeyboardInterrupt

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", on_epoch_end)


def test_ctrl_c_prints_one_line_with_the_resume_command_and_exits_130(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _interrupt_after_epoch(monkeypatch, 2)
    assert main(["train", *FAST_FLAGS, "--epochs", "4", "--quiet", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert "Traceback" not in captured.out + captured.err
    match = re.fullmatch(
        r"kerasdrop train: interrupted; last completed epoch 2 of 4; continue with: (.*)", line
    )
    assert match, line
    monkeypatch.undo()
    command = shlex.split(match.group(1))
    assert command[:2] == ["kerasdrop", "train"] and main(command[1:] + ["--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 4
    assert metrics["resumed_after_epochs"] == [2], "curves.png marks where the run was resumed"


def test_ctrl_c_before_the_first_epoch_leaves_nothing_that_blocks_out(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _interrupt_after_epoch(monkeypatch, 0)  # never: interrupt in data loading instead

    def interrupted_loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("kerasdrop.data.load_dataset", interrupted_loading)
    assert main(["train", *FAST_FLAGS, "--epochs", "1", "--quiet", "--out", str(out)]) == 130
    assert "the same command starts afresh" in capsys.readouterr().err
    assert not out.exists()


def test_a_run_that_fails_before_its_first_epoch_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "vgg16", "--dataset", "digits", "--out", str(out)]) == 2
    assert "height and width >= 32" in capsys.readouterr().err
    assert not out.exists(), "the failed run's recipe.toml would refuse the same --out"
    assert main(["train", *FAST_FLAGS, "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    quiet = capsys.readouterr().out
    assert "Epoch" not in quiet and "test accuracy" in quiet, "--quiet: the result lines only"


def test_a_failed_start_keeps_a_directory_the_user_made(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    assert main(["train", "--model", "vgg16", "--dataset", "digits", "--out", str(out)]) == 2
    assert out.is_dir() and not any(out.iterdir())


def test_train_output_has_no_ansi_codes_when_not_a_terminal(tmp_path, capsys):
    assert main(["train", *FAST_FLAGS, "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 2/2" in printed, "without --quiet each epoch is reported"
    assert "\x1b[" not in printed and "\b" not in printed


def test_the_verdict_compares_the_figures_it_prints():
    assert accuracy_verdict(0.94999, 0.95) == "test accuracy 0.9500 meets the recipe's expected 0.9500"
    assert accuracy_verdict(0.94994, 0.95) == "test accuracy 0.9499 is BELOW the recipe's expected 0.9500"


def test_sweep_reports_each_run_and_epoch_with_an_eta(tmp_path, capsys):
    flags = [*FAST_FLAGS, "--epochs", "2", "--rates", "0,0.5", "--out", str(tmp_path / "sweep")]
    assert main(["sweep", *flags]) == 0
    printed = capsys.readouterr().out.splitlines()
    runs = [line for line in printed if line.startswith("run ")]
    assert runs[0] == "run 1/2: rate 0, seed 0: training 2 epochs (ETA after this run)"
    assert re.fullmatch(r"run 2/2: rate 0\.5, seed 0: training 2 epochs \(ETA \d+s for 1 run\(s\)\)", runs[1])
    assert sum(bool(re.match(r"  rate 0\.5, seed 0: epoch [12]/2  accuracy", line)) for line in printed) == 2

    assert main(["sweep", *flags, "--quiet"]) == 0  # every run is reused; --quiet prints only the table
    quiet = capsys.readouterr().out
    assert "run 1/2" not in quiet and "| dropout |" in quiet


def test_model_and_dataset_flags_start_from_the_shipped_recipe(tmp_path, capsys, monkeypatch):
    import tomllib

    monkeypatch.chdir(tmp_path)  # found from the checkout, not only from the current directory
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "lenet5",
                "--dataset",
                "digits",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        first.startswith("starting from the recipe ") and "lenet5_digits.toml for lenet5 on digits" in first
    )
    saved = tomllib.loads((out / "recipe.toml").read_text())
    assert (
        saved["training"]["learning_rate"] == 0.002 and saved["training"]["batch_size"] == 32
    )  # the recipe's
    assert saved["training"]["epochs"] == 1  # the flag's
    assert saved["expect"]["test_accuracy"] == 0.95


def test_no_recipe_and_unmatched_flags_start_from_the_defaults(tmp_path):
    import argparse

    from kerasdrop.cli.training import recipe_or_shipped as _recipe_or_shipped

    flags = dict(recipe=None, no_recipe=False, model="lenet5", dataset="digits")
    assert _recipe_or_shipped(argparse.Namespace(**flags)).name == "lenet5_digits.toml"
    assert _recipe_or_shipped(argparse.Namespace(**{**flags, "no_recipe": True})) is None
    assert _recipe_or_shipped(argparse.Namespace(**{**flags, "dataset": "synthetic"})) is None
