"""A version being written into the repository (file by file, as `cp -r` and rsync do), or deleted, never
disturbs what serves; a models.config replaced by a broken file keeps the last good one, logged once."""

import logging
import shutil
import threading
import time

import pytest

from tests.serving.conftest import rest, running_server


@pytest.fixture
def repo(exported_repo, tmp_path):
    source, _ = exported_repo
    copy = tmp_path / "export"
    shutil.copytree(source, copy)
    return copy


def _half_copied(version_dir, target):
    """`target` as a file-by-file copy of `version_dir` leaves it midway: saved_model.pb first (as
    sorted copies do), the variables' data cut in half, their index not there yet."""
    for path in sorted(version_dir.rglob("*")):
        if path.is_file() and path.name != "variables.index":
            destination = target / path.relative_to(version_dir)
            destination.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            destination.write_bytes(data[: len(data) // 2] if "variables" in path.parts else data)


def _finish_copy(version_dir, target):
    shutil.rmtree(target)
    shutil.copytree(version_dir, target)


def test_a_server_starting_while_the_next_version_is_half_copied_serves_the_previous_one(repo):
    _half_copied(repo / "lenet5" / "1", repo / "lenet5" / "2")
    with running_server(repo=str(repo), poll_seconds=0.2) as server:
        status, body = rest(server, "GET", "/v1/models/lenet5/metadata")
        assert status == 200 and body["model_spec"]["version"] == "1", body
        _finish_copy(repo / "lenet5" / "1", repo / "lenet5" / "2")
        deadline = time.monotonic() + 60
        while server.manager.loaded_versions() != {"lenet5": [2]} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.manager.loaded_versions() == {"lenet5": [2]}


def test_version_less_requests_keep_answering_while_a_version_arrives_file_by_file(repo):
    answers = []
    with running_server(repo=str(repo), poll_seconds=0.1) as server:
        stop = threading.Event()

        def ask():
            while not stop.is_set():
                answers.append(rest(server, "GET", "/v1/models/lenet5/metadata")[0])

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            _half_copied(repo / "lenet5" / "1", repo / "lenet5" / "2")
            time.sleep(1.0)  # several polls see the half-copied version and fail to load it
            _finish_copy(repo / "lenet5" / "1", repo / "lenet5" / "2")
            deadline = time.monotonic() + 60
            while server.manager.loaded_versions() != {"lenet5": [2]} and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            asker.join()
    assert answers and set(answers) == {200}, {status: answers.count(status) for status in set(answers)}


def test_a_version_deleted_under_load_is_404_only_for_requests_naming_it(repo):
    shutil.copytree(repo / "lenet5" / "1", repo / "lenet5" / "2")
    with running_server(repo=str(repo), poll_seconds=0.1) as server:
        assert server.manager.loaded_versions() == {"lenet5": [2]}
        shutil.rmtree(repo / "lenet5" / "2")
        deadline = time.monotonic() + 60
        while server.manager.loaded_versions() != {"lenet5": [1]} and time.monotonic() < deadline:
            assert rest(server, "GET", "/v1/models/lenet5/metadata")[0] == 200
            time.sleep(0.05)
        assert rest(server, "GET", "/v1/models/lenet5/metadata")[0] == 200
        status, body = rest(server, "GET", "/v1/models/lenet5/versions/2/metadata")
        assert status == 404 and "lenet5" in body["error"]


def test_a_broken_models_config_keeps_the_last_good_one_and_is_logged_once(repo, caplog):
    config = repo / "models.config"
    config.write_text(
        'model_config_list { config { name: "lenet5" base_path: "/models/lenet5" '
        'version_labels { key: "stable" value: 1 } } }\n'
    )
    with running_server(repo=str(repo), models_config=str(config), poll_seconds=0.1) as server:
        assert rest(server, "GET", "/v1/models/lenet5/labels/stable/metadata")[0] == 200
        with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
            config.write_text("model_config_list { config { name: ")
            time.sleep(1.5)  # about 15 polls
        assert rest(server, "GET", "/v1/models/lenet5/labels/stable/metadata")[0] == 200
    logged = [record for record in caplog.records if "models config" in record.getMessage()]
    assert len(logged) == 1, [record.getMessage() for record in logged]
