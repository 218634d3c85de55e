"""The model card of each exported version: fields, values equal to the run's files, unknowns, TF Serving layout."""

import json
import shutil

import pytest

from kerasdrop.cli import main
from kerasdrop.exporting import export
from kerasdrop.exporting.model_card import CARD_SECTIONS, load_model_card


@pytest.fixture(scope="module")
def carded(calibrated_run, tmp_path_factory):
    run, _ = calibrated_run
    repo = tmp_path_factory.mktemp("repo")
    result = export(run.directory / "model.keras", name="tiny", repo=repo, mc_samples=4, models_config=None)
    return run, result, json.loads((result.path / "model_card.json").read_text())


def test_card_is_published_inside_the_version_beside_tf_servings_files(carded):
    _, result, _ = carded
    names = {path.name for path in result.path.iterdir()}
    assert {"MODEL_CARD.md", "model_card.json", "saved_model.pb", "variables", "verification.json"} <= names
    assert (result.path / "variables" / "variables.index").is_file()
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".staging")]


def test_tf_loads_the_version_with_the_card_files_beside_it(carded):
    # TF Serving's SavedModel loader reads saved_model.pb and variables/ and ignores other files, as it
    # does the assets/foo.txt beside its own test servable; TF's loader is the same code path.
    import numpy as np
    import tensorflow as tf

    _, result, _ = carded
    loaded = tf.saved_model.load(str(result.path))
    outputs = loaded.signatures["serving_default"](images=tf.constant(np.zeros((2, 8, 8, 1), "float32")))
    assert outputs["probabilities"].shape == (2, 10)
    assert set(loaded.signatures) == {"serving_default", "mc_dropout"}


def test_the_published_version_with_its_card_passes_the_verifier_on_tf_servings_load_path(carded):
    # The verifier loads a SavedModel directory with the TF2 loader and with the TF1 loader and
    # Session.run on the signatures' tensor names, as TF Serving does; the card files sit beside it.
    from kerasdrop.verification import verify

    _, result, _ = carded
    report = verify(str(result.path))
    assert report.ok, [finding.message for finding in report.errors]
    assert any("TF Serving's session path" in finding.message for finding in report.findings)


def test_card_values_equal_the_runs_metrics_and_the_verification_report(carded):
    run, result, card = carded
    metrics = json.loads((run.directory / "metrics.json").read_text())
    verification = json.loads((result.path / "verification.json").read_text())
    assert set(card) == set(CARD_SECTIONS)
    for key in ("test_accuracy", "test_loss", "train_accuracy", "validation_accuracy", "generalization_gap"):
        assert card["evaluation"][key] == metrics[key], key
    assert card["calibration"] == metrics["calibration"]
    assert card["verification"]["summary"] == verification["summary"]
    assert card["verification"]["ok"] is verification["ok"] is True
    assert [c["check"] for c in card["verification"]["checks"]] == [
        c["check"] for c in verification["checks"]
    ]
    assert card["training_data"]["split_sizes"] == {
        "train": metrics["dataset"]["num_train"],
        "validation": metrics["dataset"]["num_validation"],
        "test": metrics["dataset"]["num_test"],
    }
    assert card["training_data"]["classes"] == metrics["dataset"]["class_names"]
    assert card["recipe"]["model"] == {"name": "mlp", "dense_units": [32], "dropout": 0.5, "options": {}}
    assert card["provenance"]["tensorflow"] and card["unknown"] == {}


def test_card_describes_the_model_and_its_interface(carded):
    _, result, card = carded
    details = card["model_details"]
    assert (details["name"], details["version"], details["family"]) == ("tiny", result.version, "mlp")
    assert details["head"] == [
        {"layer": "fc1", "dense_units": 32, "activation": "relu"},
        {"layer": "fc1_dropout", "kind": "standard", "rate": 0.5},
        {"layer": "predictions", "dense_units": 10, "activation": "softmax"},
    ]
    assert details["parameters"] == 8 * 8 * 32 + 32 + 32 * 10 + 10
    assert card["input"]["shape"] == [None, 8, 8, 1] and card["input"]["pixel_range"] == [0.0, 16.0]
    assert card["export"]["signatures"]["mc_dropout"]["samples"] == 4
    assert card["export"]["formats"] == ["savedmodel", "onnx"]


def test_markdown_has_mitchell_sections_and_the_cli_prints_it(carded, capsys):
    _, result, card = carded
    markdown = (result.path / "MODEL_CARD.md").read_text()
    for section in (
        "## Model details",
        "## Intended use",
        "## Training data",
        "## Metrics (dropout off)",
        "## Quantitative analyses",
        "## Ethical considerations",
        "## Verification",
        "## Unknown fields",
    ):
        assert section in markdown, section
    assert f"| test_accuracy | {card['evaluation']['test_accuracy']:.4f} |" in markdown
    assert main(["card", str(result.path.parent)]) == 0  # the model directory: its latest version
    assert capsys.readouterr().out == markdown
    assert main(["card", str(result.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == card


def test_bare_keras_file_gets_what_is_known_and_names_the_unknowns(calibrated_run, tmp_path):
    run, _ = calibrated_run
    bare = tmp_path / "elsewhere.keras"
    shutil.copy(run.directory / "model.keras", bare)
    result = export(bare, name="bare", repo=tmp_path / "repo", formats=["savedmodel"], models_config=None)
    card = load_model_card(result.path)
    assert {"training_data", "recipe", "provenance", "evaluation", "calibration"} <= set(card["unknown"])
    assert "not in a run directory" in card["unknown"]["evaluation"]
    assert card["evaluation"] is None and card["model_details"]["parameters"] > 0
    assert card["verification"]["ok"] and card["export"]["formats"] == ["savedmodel"]
    assert "Unknown: " in (result.path / "MODEL_CARD.md").read_text()


def test_best_checkpoint_is_not_given_the_final_models_metrics(calibrated_run, tmp_path):
    run, _ = calibrated_run
    result = export(
        run.directory / "best.keras", name="best", repo=tmp_path, formats=["savedmodel"], models_config=None
    )
    card = load_model_card(result.path)
    assert (
        card["evaluation"] is None and "measures model.keras, not best.keras" in card["unknown"]["evaluation"]
    )


@pytest.mark.parametrize("content", ["{", "[]", '{"model_details": {}}'])
def test_card_command_refuses_what_is_not_a_card(tmp_path, capsys, content):
    (tmp_path / "model_card.json").write_text(content)
    assert main(["card", str(tmp_path / "model_card.json")]) == 2
    assert "Expected a model_card.json written by `kerasdrop export`" in capsys.readouterr().err
    assert main(["card", str(tmp_path / "missing")]) == 2
