"""`kerasdrop models`: counts from a cache keyed by what decides them, never a build per row; names never cut."""

import json
import os

import pytest

from kerasdrop.cli import main
from kerasdrop.zoo import list_models, param_counts, registry


@pytest.fixture(autouse=True)
def _user_cache_in_tmp_path(monkeypatch, tmp_path):
    monkeypatch.setenv(param_counts.CACHE_VARIABLE, str(tmp_path / "cache"))


@pytest.fixture
def builds(monkeypatch):
    """Counts every model built for a parameter count."""
    built = []
    original = param_counts.count_by_building

    def counting(name, num_classes):
        built.append(name)
        return original(name, num_classes)

    monkeypatch.setattr(param_counts, "count_by_building", counting)
    return built


def test_listing_every_model_builds_none(builds, capsys):
    assert main(["models"]) == 0
    assert main(["models", "keras_app:*"]) == 0
    assert builds == [], (
        "the shipped kerasdrop/zoo/param_counts.json is stale for these models; regenerate its stale "
        "entries with `python -m kerasdrop.zoo.param_counts`"
    )


@pytest.mark.parametrize("name", ["lenet5", "mlp", "simple_cnn"])
def test_shipped_counts_are_what_building_gives(name):
    for num_classes in (10, 3):  # other class counts follow from the head, without a build
        assert param_counts.parameter_counts([name], num_classes)[name] == param_counts.count_by_building(
            name, num_classes
        )


def test_a_changed_default_invalidates_the_cached_count(builds, monkeypatch):
    before = param_counts.parameter_counts(["lenet5"])["lenet5"]
    changed = {**registry._model_info}
    changed["lenet5"] = registry.dataclasses.replace(
        registry._model_info["lenet5"], default_dense_units=(60, 42)
    )
    monkeypatch.setattr(registry, "_model_info", changed)
    after = param_counts.parameter_counts(["lenet5"])["lenet5"]
    assert builds == ["lenet5"] and after != before
    cached = json.loads(param_counts.user_cache_file().read_text())
    assert [entry["by_classes"]["10"] for entry in cached.values()] == [after]
    param_counts.parameter_counts(["lenet5"])
    assert builds == ["lenet5"], "counted once, then read from the user cache"


def test_an_unwritable_cache_still_lists(builds, monkeypatch, tmp_path, capsys):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    os.chmod(readonly, 0o500)
    monkeypatch.setenv(param_counts.CACHE_VARIABLE, str(readonly / "kerasdrop"))
    monkeypatch.setattr(param_counts, "SHIPPED", tmp_path / "absent.json")
    assert main(["models", "mlp"]) == 0
    assert builds == ["mlp"] and "mlp" in capsys.readouterr().out


@pytest.mark.parametrize("columns", ["80", "40"])
def test_names_are_never_cut(columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", columns)  # capsys is a pipe, not a terminal: both must show whole names
    assert main(["models", "keras_app:*"]) == 0
    printed = capsys.readouterr().out
    assert "…" not in printed
    for name in list_models("keras_app:*"):
        assert f" {name} " in printed, name
