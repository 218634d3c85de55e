"""`serve --models-config`: exactly the models the file lists, by their names, from their base paths."""

import logging

import pytest

from kerasdrop.cli import main
from kerasdrop.serving.models.manager import ModelManager
from kerasdrop.serving.models.repository import ConfigError
from tests.serving.conftest import rest, running_server


def _config(path, **models):
    path.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
            for name, base in models.items()
        )
        + "}\n"
    )
    return path


def test_the_files_names_and_base_paths_are_served_and_nothing_else(exported_repo, tmp_path):
    repo, _ = exported_repo
    (repo / "unlisted" / "1").mkdir(parents=True, exist_ok=True)  # in the repository, not in the file
    config = _config(tmp_path / "models.config", digits=repo / "lenet5")
    with running_server(repo=None, models_config=str(config)) as server:
        assert server.manager.loaded_versions() == {"digits": [1]}
        assert rest(server, "GET", "/v1/models/digits")[0] == 200
        assert rest(server, "GET", "/v1/models/lenet5")[0] == 404


def test_the_served_set_follows_the_file_when_it_changes(exported_repo, tmp_path):
    repo, _ = exported_repo
    config = _config(tmp_path / "models.config", first=repo / "lenet5")
    manager = ModelManager(None, backend="onnx", models_config=config)
    manager.sync()
    assert manager.loaded_versions() == {"first": [1]}
    _config(config, first=repo / "lenet5", second=repo / "lenet5")
    manager.sync()
    assert manager.loaded_versions() == {"first": [1], "second": [1]}
    manager.stop()


def test_a_relative_base_path_is_refused_as_tf_serving_refuses_it(tmp_path, capsys):
    config = _config(tmp_path / "models.config", lenet5="export/lenet5")
    assert main(["serve", "--models-config", str(config), "--rest-port", "0", "--grpc-port", "0"]) == 2
    error = capsys.readouterr().err
    assert "expected model lenet5 to have an absolute path or URI; got base_path()='export/lenet5'" in error


def test_a_model_listed_twice_is_refused(tmp_path):
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "a" base_path: "/x/a" } config { name: "a" base_path: "/x/b" } }'
    )
    with pytest.raises(ConfigError, match="illegal to list model a multiple times"):
        ModelManager(None, models_config=config)


def test_a_missing_base_path_is_logged_once_and_the_others_serve(exported_repo, tmp_path, caplog):
    repo, _ = exported_repo
    config = _config(tmp_path / "models.config", lenet5=repo / "lenet5", gone=tmp_path / "nowhere" / "gone")
    manager = ModelManager(None, backend="onnx", models_config=config)
    with caplog.at_level(logging.WARNING, logger="kerasdrop.serve"):
        manager.sync()
        manager.sync()
    assert manager.loaded_versions() == {"lenet5": [1]}
    missing = [record.getMessage() for record in caplog.records if "does not exist" in record.getMessage()]
    assert len(missing) == 1 and "gone" in missing[0]
    manager.stop()


def test_repo_and_models_config_together_are_refused(exported_repo, tmp_path, capsys):
    repo, _ = exported_repo
    config = _config(tmp_path / "models.config", lenet5=repo / "lenet5")
    assert (
        main(
            [
                "serve",
                "--repo",
                str(repo),
                "--models-config",
                str(config),
                "--rest-port",
                "0",
                "--grpc-port",
                "0",
            ]
        )
        == 2
    )
    assert "name different sets of models; give one" in capsys.readouterr().err
