"""`kerasdrop promote`: the evidence (replayed requests, agreement, accuracy, McNemar), the gate, the
atomic models.config rewrite that keeps every other field, and the rollback."""

import json
import math
import shutil

import numpy as np
import pytest

from kerasdrop import cli
from kerasdrop.layout import MODELS_CONFIG_FILE, PROMOTION_HISTORY_FILE
from kerasdrop.serving.models import labels, promotion
from kerasdrop.serving.models.backends import DEFAULT_BACKEND
from kerasdrop.serving.models.repository import models_config_settings

CONFIG = """# kept by hand: the labels of lenet5
model_config_list {
  config {
    name: "lenet5"
    base_path: "/models/lenet5"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "other"
    base_path: "/models/other"
    model_platform: "tensorflow"
  }
}
"""


@pytest.fixture()
def two_versions(exported_repo, tmp_path):
    """Version 2 of lenet5: a copy of version 1 (it answers exactly the same)."""
    source, _ = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    shutil.copytree(repo / "lenet5" / "1", repo / "lenet5" / "2")
    (repo / MODELS_CONFIG_FILE).write_text(CONFIG)
    return repo


@pytest.mark.parametrize("b, c", [(0, 0), (0, 5), (3, 9), (12, 30), (250, 310), (1, 1)])
def test_mcnemar_exact_p_value_matches_the_binomial_test(b, c):
    stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert math.isclose(promotion.mcnemar_p_value(b, c), expected, rel_tol=1e-9)


def test_promote_replays_warmup_requests_moves_the_label_and_rolls_back(two_versions, capsys):
    repo = two_versions
    config = repo / MODELS_CONFIG_FILE
    before = models_config_settings(config)
    assert cli.main(["promote", "lenet5", "--label", "stable", "--to", "2", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "no request log: 2 warmup and golden requests of version 2 (not real traffic)" in out, out
    assert "100.00% (9 of 9 rows)" in out and "largest output difference  0 (probabilities)" in out, out
    after = models_config_settings(config)
    assert after.labels == {"lenet5": {"stable": 2, "canary": 2}, "other": {}}
    assert after.policies == before.policies and config.read_text().startswith("# kept by hand")
    history = [json.loads(line) for line in (repo / PROMOTION_HISTORY_FILE).read_text().splitlines()]
    assert [(h["action"], h["from"], h["to"]) for h in history] == [("promote", 1, 2)]
    assert history[0]["evidence"]["agreement"] == 1.0
    assert cli.main(["promote", "lenet5", "--label", "stable", "--rollback", "--repo", str(repo)]) == 0
    assert models_config_settings(config).labels["lenet5"] == {"stable": 1, "canary": 2}


def test_dry_run_and_refusals_change_nothing(two_versions, capsys):
    repo = two_versions
    config = repo / MODELS_CONFIG_FILE
    text = config.read_text()
    assert (
        cli.main(["promote", "lenet5", "--label", "stable", "--to", "2", "--repo", str(repo), "--dry-run"])
        == 0
    )
    assert "dry run: the gate passes" in capsys.readouterr().out
    assert config.read_text() == text and not (repo / PROMOTION_HISTORY_FILE).exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--to", "3"], "version 3 of 'lenet5' not found"),
        (["--rollback"], "no recorded move of label 'stable'"),
        (["--to", "2", "--min-agreement", "1.5"], "Invalid value received for --min-agreement"),
    ],
)
def test_bad_requests_exit_2_and_change_nothing(two_versions, capsys, argv, message):
    repo = two_versions
    text = (repo / MODELS_CONFIG_FILE).read_text()
    assert cli.main(["promote", "lenet5", "--label", "stable", "--repo", str(repo), *argv]) == 2
    assert message in capsys.readouterr().err
    assert (repo / MODELS_CONFIG_FILE).read_text() == text


def test_a_label_on_a_version_the_policy_does_not_load_is_refused(two_versions, capsys):
    repo = two_versions
    config = repo / MODELS_CONFIG_FILE
    config.write_text(CONFIG.replace("versions: 1 versions: 2", "versions: 1"))
    assert cli.main(["promote", "lenet5", "--label", "stable", "--to", "2", "--repo", str(repo)]) == 2
    assert "loads versions [1], not 2" in capsys.readouterr().err


def test_a_rollback_after_a_hand_edit_is_refused(two_versions, capsys):
    repo = two_versions
    config = repo / MODELS_CONFIG_FILE
    assert cli.main(["promote", "lenet5", "--label", "stable", "--to", "2", "--repo", str(repo)]) == 0
    from google.protobuf import text_format

    header, edited_config = labels.read_config(config)
    edited_config.model_config_list.config[0].version_labels["stable"] = 1  # by hand, outside promote
    config.write_text(header + text_format.MessageToString(edited_config))
    edited = config.read_text()
    assert cli.main(["promote", "lenet5", "--label", "stable", "--rollback", "--repo", str(repo)]) == 2
    assert "models.config was edited since" in capsys.readouterr().err
    assert config.read_text() == edited


def _export_trained(repo, version, *, shuffle_labels: bool):
    import keras

    import kerasdrop
    from kerasdrop.data.digits import load_digits_arrays
    from kerasdrop.exporting import export

    images, labels = load_digits_arrays()
    if shuffle_labels:
        labels = np.random.default_rng(0).permutation(labels)
    keras.utils.set_random_seed(3)
    model = kerasdrop.create_model(
        "mlp", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16), dense_units=[32], dropout=0.2
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=15, batch_size=64, verbose=0)
    export(model, name="digits", repo=repo, version=version, formats=("savedmodel",), models_config=None)


@pytest.mark.slow
def test_a_candidate_trained_on_shuffled_labels_is_refused_by_agreement_and_by_accuracy(tmp_path, capsys):
    repo = tmp_path / "export"
    _export_trained(repo, 1, shuffle_labels=False)
    _export_trained(repo, 2, shuffle_labels=True)
    config = repo / MODELS_CONFIG_FILE
    config.write_text(
        'model_config_list { config { name: "digits" base_path: "/models/digits" '
        'model_version_policy { all {} } version_labels { key: "stable" value: 1 } } }\n'
    )
    text = config.read_text()
    argv = ["promote", "digits", "--label", "stable", "--to", "2", "--repo", str(repo), "--data", "digits"]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "refused: top-1 agreement" in out and "refused: test accuracy drops by" in out, out
    assert "McNemar exact p-value" in out and "label 'stable' of digits unchanged (version 1)" in out
    assert config.read_text() == text
    # The gate's two halves each refuse on their own.
    assert cli.main([*argv, "--min-agreement", "0"]) == 1
    out = capsys.readouterr().out
    assert "refused: test accuracy drops by" in out and "refused: top-1 agreement" not in out
    comparison = promotion.evaluate(repo, config, "digits", "stable", 2, data="digits")
    assert comparison.accuracy[1] > 0.8 and comparison.accuracy[2] < 0.3 and comparison.p_value < 1e-6


def test_a_candidate_that_cannot_load_is_a_clear_error(two_versions, capsys):
    repo = two_versions
    (repo / "lenet5" / "2" / "saved_model.pb").write_bytes(b"\x08\x01 not a SavedModel")
    assert cli.main(["promote", "lenet5", "--label", "stable", "--to", "2", "--repo", str(repo)]) == 2
    assert (
        f"version 2 of 'lenet5' cannot be loaded on the {DEFAULT_BACKEND} backend" in capsys.readouterr().err
    )
