"""models.config: written beside the repository by default, merged so hand-written entries and fields stay."""

import pathlib

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kerasdrop.exporting import export
from kerasdrop.exporting.models_config import write_models_config

HAND_WRITTEN = """# Our cluster's models: edited by hand, keep the labels.
model_config_list {
  config {
    name: "lenet5"
    base_path: "/mnt/models/lenet5"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 7 versions: 8 } }
    version_labels { key: "stable" value: 7 }
    version_labels { key: "canary" value: 8 }
  }
  config {
    name: "from_another_repository"
    base_path: "/other/from_another_repository"
    model_platform: "tensorflow"
  }
}
"""


def _parse(path: pathlib.Path):
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def _fake_repository(root: pathlib.Path, **published) -> pathlib.Path:
    for name, versions in published.items():
        for version in versions:
            (root / name / str(version)).mkdir(parents=True)
    return root


def test_merge_keeps_every_hand_written_entry_and_field(tmp_path):
    repo = _fake_repository(tmp_path / "repo", lenet5=[7, 8], new_model=[1])
    config = tmp_path / "models.config"
    config.write_text(HAND_WRITTEN)
    write_models_config(repo, config)
    merged = _parse(config)
    entries = {entry.name: entry for entry in merged.model_config_list.config}
    assert list(entries) == ["lenet5", "from_another_repository", "new_model"]
    lenet5 = entries["lenet5"]
    assert lenet5.base_path == "/mnt/models/lenet5"
    assert dict(lenet5.version_labels) == {"stable": 7, "canary": 8}
    assert list(lenet5.model_version_policy.specific.versions) == [7, 8]
    assert entries["from_another_repository"].base_path == "/other/from_another_repository"
    assert (entries["new_model"].base_path, entries["new_model"].model_platform) == (
        "/models/new_model",
        "tensorflow",
    )
    assert config.read_text().startswith("# Our cluster's models: edited by hand, keep the labels.\n")
    before = config.read_text()
    write_models_config(repo, config)
    assert config.read_text() == before, "merging again changes nothing"


@pytest.fixture(scope="module")
def tiny_model():
    import kerasdrop

    return kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), dense_units=(4,))


def test_export_writes_the_config_beside_the_repository_not_in_the_current_directory(
    tiny_model, tmp_path, monkeypatch
):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    result = export(tiny_model, name="tiny", repo=tmp_path / "elsewhere", formats=["savedmodel"])
    assert result.models_config == tmp_path / "elsewhere" / "models.config"
    (entry,) = _parse(result.models_config).model_config_list.config
    assert (entry.name, entry.base_path) == ("tiny", "/models/tiny")
    assert not any((tmp_path / "cwd").iterdir()), "nothing is written into the current directory"


def test_a_config_that_cannot_be_merged_refuses_the_export_before_anything_is_published(tiny_model, tmp_path):
    repo = tmp_path / "export"
    repo.mkdir()
    (repo / "models.config").write_text("model_config_list { config { nmae: 'typo' } }\n")
    with pytest.raises(ValueError, match="^Invalid value received for argument `models_config`.*nmae"):
        export(tiny_model, name="tiny", repo=repo, formats=["savedmodel"])
    assert not (repo / "tiny").exists()
    assert "nmae" in (repo / "models.config").read_text(), "the user's file is left as it is"


COMMENTED = """# Our cluster's models.
model_config_list {
  # lenet5: stable is what the shop calls; canary gets 5% (see runbook).
  config {
    name: "lenet5"  # do not rename: dashboards key on it
    base_path: "/mnt/models/lenet5"
    model_platform: "tensorflow"
    version_labels { key: "stable" value: 7 }
  }
  # a model served from another repository
  config { name: "other" base_path: "/other/other" model_platform: "tensorflow" }
}
# end of the hand-written part
"""


def test_comments_anywhere_in_the_file_survive_a_merge_that_adds_a_model(tmp_path):
    repo = _fake_repository(tmp_path / "repo", lenet5=[7], new_model=[1])
    config = tmp_path / "models.config"
    config.write_text(COMMENTED)
    write_models_config(repo, config)
    text = config.read_text()
    for line in COMMENTED.splitlines():
        assert line in text, f"lost: {line!r}"
    entries = {entry.name: entry for entry in _parse(config).model_config_list.config}
    assert list(entries) == ["lenet5", "other", "new_model"]
    assert (entries["new_model"].base_path, entries["new_model"].model_platform) == (
        "/models/new_model",
        "tensorflow",
    )
    assert text.index('name: "new_model"') < text.index("# end of the hand-written part")
    before = text
    write_models_config(repo, config)
    assert config.read_text() == before, "merging again changes nothing"


def test_filling_a_field_into_a_hand_written_entry_keeps_the_leading_comments_as_documented(tmp_path):
    repo = _fake_repository(tmp_path / "repo", lenet5=[1])
    config = tmp_path / "models.config"
    config.write_text('# leading\nmodel_config_list {\n  # inner\n  config { name: "lenet5" }\n}\n')
    write_models_config(repo, config)
    text = config.read_text()
    assert text.startswith("# leading\n") and "# inner" not in text
    (entry,) = _parse(config).model_config_list.config
    assert (entry.base_path, entry.model_platform) == ("/models/lenet5", "tensorflow")


def test_an_explicit_base_path_moves_the_exported_models_entry_and_no_other(tmp_path):
    repo = _fake_repository(tmp_path / "export", lenet5=[1], mlp=[1])
    config = tmp_path / "export" / "models.config"
    write_models_config(repo, config)
    write_models_config(repo, config, "/srv/models", exported="lenet5")
    paths = {entry.name: entry.base_path for entry in _parse(config).model_config_list.config}
    assert paths == {"lenet5": "/srv/models/lenet5", "mlp": "/models/mlp"}
    # Without --base-path, an export keeps what the entry says (a hand-set path is not reset to /models).
    write_models_config(repo, config, exported="lenet5")
    assert {e.name: e.base_path for e in _parse(config).model_config_list.config}[
        "lenet5"
    ] == "/srv/models/lenet5"


def _export_many(repo, config, prefix, count, barrier):
    """One exporter process: publishes `count` fake models, each merged into `config` as `export
    --base-path /<prefix>` does, with the read-merge-write slowed so that the two processes overlap."""
    import time

    from kerasdrop.exporting import models_config

    read = models_config.read_models_config

    def slowed(*args, **kwargs):
        found = read(*args, **kwargs)
        time.sleep(0.02)
        return found

    models_config.read_models_config = slowed
    barrier.wait()
    for index in range(count):
        (repo / f"{prefix}{index}" / "1").mkdir(parents=True)
        models_config.write_models_config(repo, config, f"/{prefix}", exported=f"{prefix}{index}")


def test_two_exports_at_once_lose_no_entry(tmp_path):
    import multiprocessing

    repo, config = tmp_path / "export", tmp_path / "export" / "models.config"
    repo.mkdir()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_export_many, args=(repo, config, prefix, 15, barrier)) for prefix in "ab"
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    paths = {entry.name: entry.base_path for entry in _parse(config).model_config_list.config}
    # Each entry as its own export wrote it: none overwritten by the other process's stale copy.
    assert paths == {
        f"{prefix}{index}": f"/{prefix}/{prefix}{index}" for prefix in "ab" for index in range(15)
    }
