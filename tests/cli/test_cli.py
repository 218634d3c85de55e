"""The command line: start-up without TensorFlow, the zoo table, describe, and bad input."""

import subprocess
import sys

import pytest

from kerasdrop.cli import main


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from kerasdrop.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'rich', 'numpy') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout
    assert "describe" in result.stdout and "models" in result.stdout


def test_models_prints_the_matching_zoo_rows(capsys):
    assert main(["models", "lenet*"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "vgg16" not in out
    # LeNet-5 at 32x32x1 with the default 120-84 head and 10 classes has 0.14M parameters.
    assert "0.14M" in out


def test_models_with_no_match_exits_2(capsys):
    assert main(["models", "nothing*"]) == 2
    assert "No model matches 'nothing*'" in capsys.readouterr().err


def test_describe_prints_summary_and_head(capsys):
    assert (
        main(["describe", "mlp", "--input-shape", "8,8,1", "--dense-units", "32,16", "--dropout", "0.5,0.25"])
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "fc1 Dense(32, relu) -> fc1_dropout Dropout(0.5) -> fc2 Dense(16, relu) -> fc2_dropout Dropout(0.25)"
        in out
    )
    assert "predictions Dense(10, softmax)" in out
    assert "Total params" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["describe", "mlp", "--dropout", "1.5"],
            "Invalid value received for argument `dropout`. Expected a float in [0, 1)",
        ),
        (["describe", "vgg17"], "Did you mean: vgg16"),
        (["describe", "vgg16", "--input-shape", "16,16,3"], ">= 32 for vgg16"),
        (["describe", "mlp", "--dense-units", "64,32", "--dropout", "0.5,0.5,0.5"], "a list of 2 rates"),
    ],
)
def test_bad_model_arguments_exit_2_with_the_library_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unparsable_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["describe", "mlp", "--dense-units", "512,abc"])
    assert raised.value.code == 2
    assert "Expected comma-separated integers" in capsys.readouterr().err


def test_train_from_flags_reports_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "mlp",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--dense-units",
        "16",
        "--dropout",
        "0.3",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"run saved to {out}/" in printed and "test accuracy" in printed
    assert (out / "model.keras").is_file()


def test_train_recipe_with_set_override_and_expectation(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[model]\nname = "mlp"\ndense_units = [16]\n[data]\ndataset = "synthetic"\n'
        "[training]\nepochs = 5\n[expect]\ntest_accuracy = 0.5\n"
    )
    assert main(["train", str(recipe), "--set", "training.epochs=2", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "2 epochs in" in printed and "meets the recipe's expected 0.5000" in printed


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--set", "training.epoch=1"],
            "Unknown recipe key 'training.epoch'. Did you mean: training.epochs",
        ),
        (["train", "--set", "epochs"], "Expected key=value"),
        (["train", "no/such/recipe.toml"], "Recipe file not found: no/such/recipe.toml"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--dataset", "imagenet"], "Invalid value received for argument `dataset`"),
        (["train", "--epochs", "0"], "Expected an integer >= 1"),
        (["sweep", "--rates", "0,1.5", "--out", "x"], "Invalid value received for argument `rates`"),
    ],
)
def test_bad_training_input_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
