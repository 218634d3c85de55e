"""Versions come and go without taking down what serves: failed loads, bad entries, models.config."""

import logging
import shutil

import numpy as np
import pytest

from kerasdrop.layout import (
    INT8_ONNX_FILE,
    ONNX_FILE,
    OPENVINO_BIN_FILE,
    OPENVINO_XML_FILE,
    SAVED_MODEL_FILE,
)
from kerasdrop.serving.models.manager import ModelManager, _fingerprint
from kerasdrop.serving.models.repository import (
    ConfigError,
    VersionPolicy,
    read_models_config,
)
from tests.serving.conftest import rest, running_server

IMAGE = np.random.default_rng(1).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


def _copy(exported_repo, tmp_path):
    source, model = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    return repo, model


def _break_version(repo, backend):
    """Version 2 that fails to load: a corrupt saved_model.pb, or a truncated model.onnx."""
    broken = repo / "lenet5" / "2"
    shutil.copytree(repo / "lenet5" / "1", broken)
    if backend == "tf":
        (broken / "saved_model.pb").write_bytes(b"\x08\x01 this is not a SavedModel")
    else:
        data = (broken / "model.onnx").read_bytes()
        (broken / "model.onnx").write_bytes(data[: len(data) // 3])
    return broken


@pytest.mark.parametrize("backend", ["tf", "onnx"])
def test_a_version_that_fails_to_load_keeps_the_old_one_serving(exported_repo, tmp_path, caplog, backend):
    repo, model = _copy(exported_repo, tmp_path)
    manager = ModelManager(repo, backend=backend)
    manager.sync()
    broken = _break_version(repo, backend)
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        manager.sync()
        manager.sync()  # within the backoff: not retried
    failures = [r.getMessage() for r in caplog.records if "failed to load" in r.getMessage()]
    assert len(failures) == 1, failures
    assert str(broken) in failures[0] and "next try in" in failures[0]
    assert manager.loaded_versions() == {"lenet5": [1]}
    loaded = manager.resolve("lenet5")
    outputs = manager.run(loaded, "serving_default", {"images": IMAGE})
    np.testing.assert_allclose(outputs["probabilities"], model(IMAGE, training=False), atol=1e-5)
    # The copy is fixed: the changed files are retried at once, then version 1 is retired.
    shutil.rmtree(broken)
    shutil.copytree(repo / "lenet5" / "1", broken)
    manager.sync()
    assert manager.loaded_versions() == {"lenet5": [2]}
    manager.stop()


@pytest.mark.parametrize(
    "name", [SAVED_MODEL_FILE, ONNX_FILE, INT8_ONNX_FILE, OPENVINO_XML_FILE, OPENVINO_BIN_FILE]
)
def test_a_change_to_the_file_any_backend_loads_retries_a_failed_load_at_once(tmp_path, name):
    """A failed load is retried before its backoff ends when the version's files changed (the copy
    finished): for every backend's file, --backend onnx-int8's and openvino's included."""
    (tmp_path / name).write_bytes(b"the first part")
    before = _fingerprint(tmp_path)
    (tmp_path / name).write_bytes(b"the first part, then the rest")
    assert _fingerprint(tmp_path) != before


def test_bad_entries_are_skipped_with_a_log_naming_them(exported_repo, tmp_path, caplog):
    repo, _ = _copy(exported_repo, tmp_path)
    for name in ("²", "99999999999999999999", "12abc"):
        (repo / "lenet5" / name).mkdir()
    (repo / "lenet5" / "3").mkdir()  # still being copied: no saved_model.pb yet, silently not a version
    manager = ModelManager(repo, backend="onnx")
    with caplog.at_level(logging.WARNING, logger="kerasdrop.serve"):
        manager.sync()
        manager.sync()
    assert manager.loaded_versions() == {"lenet5": [1]}
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 3, "each bad entry is reported once, not at every poll"
    assert any("²" in line for line in skipped) and any("int64" in line for line in skipped)
    manager.stop()


def test_models_config_version_policy_is_honoured(shared_testdata, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "default" base_path: "/models/default" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 123 versions: 124 } } '
        'version_labels { key: "stable" value: 123 } version_labels { key: "canary" value: 124 } } }'
    )
    with running_server(
        models={"default": shared_testdata / "saved_model_half_plus_two_2_versions"},
        models_config=str(config),
    ) as server:
        status, body = rest(server, "GET", "/v1/models/default")
        assert [entry["version"] for entry in body["model_version_status"]] == ["123", "124"]
        for label in ("stable", "canary"):
            status, body = rest(
                server, "POST", f"/v1/models/default/labels/{label}:predict", {"instances": [2.0]}
            )
            assert status == 200 and body == {"predictions": [3.0]}, body


def test_latest_n_policy(shared_testdata):
    assert VersionPolicy.parse("latest:2").select([1, 5, 7]) == [5, 7]
    manager = ModelManager(
        None,
        models={"default": shared_testdata / "saved_model_half_plus_two_2_versions"},
        policy=VersionPolicy.parse("latest:2"),
        backend="tf",
    )
    manager.sync()
    assert manager.loaded_versions() == {"default": [123, 124]}
    manager.stop()


def test_models_config_syntax_error_names_file_and_line(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n  config {\n    name: "lenet5"\n    bogus_field: 3\n  }\n}\n')
    with pytest.raises(ConfigError, match=rf"^{config}:4: not a valid ModelServerConfig"):
        read_models_config(config)


def test_serve_exits_2_on_a_bad_models_config_at_start_up(exported_repo, tmp_path, capsys):
    from kerasdrop.cli import main

    repo, _ = exported_repo
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "lenet5" ')
    assert main(["serve", "--models-config", str(config), "--rest-port", "0", "--grpc-port", "0"]) == 2
    assert f"{config}:1" in capsys.readouterr().err


def test_a_broken_models_config_at_runtime_keeps_the_last_good_one(exported_repo, tmp_path, caplog):
    repo, _ = exported_repo
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "lenet5" version_labels { key: "stable" value: 1 } } }'
    )
    manager = ModelManager(repo, backend="onnx", models_config=config)
    manager.sync()
    config.write_text("model_config_list { config { name: ")
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        manager.sync()
    assert manager.resolve("lenet5", label="stable").version == 1
    assert any(str(config) in r.getMessage() and "last good" in r.getMessage() for r in caplog.records)
    manager.stop()


def test_a_label_moved_to_a_version_not_yet_serving_stays_on_the_old_one_until_it_does(
    exported_repo, tmp_path
):
    repo, _ = _copy(exported_repo, tmp_path)
    config = tmp_path / "models.config"
    policy = "model_version_policy { specific { versions: 1 versions: 2 } }"
    config.write_text(
        f'model_config_list {{ config {{ name: "lenet5" {policy} '
        'version_labels { key: "stable" value: 1 } } }'
    )
    manager = ModelManager(repo, backend="onnx", models_config=config)
    manager.sync()
    config.write_text(
        f'model_config_list {{ config {{ name: "lenet5" {policy} '
        'version_labels { key: "stable" value: 2 } } }'
    )
    manager.sync()  # version 2 is not in the repository yet: the label keeps answering from version 1
    assert manager.resolve("lenet5", label="stable").version == 1
    shutil.copytree(repo / "lenet5" / "1", repo / "lenet5" / "2")
    manager.sync()
    assert manager.resolve("lenet5", label="stable").version == 2
    manager.stop()
