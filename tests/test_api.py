"""The top-level API reads as docs/architecture.md writes it: kerasdrop.train/verify/export are plain
functions; the import paths CHANGELOG.md lists as renamed are gone."""

import importlib
import importlib.util
import inspect
import pathlib
import re
import sys

import pytest

import kerasdrop


def test_train_verify_export_are_calls_whose_results_live_in_their_packages(tmp_path):
    run = kerasdrop.train(
        {"model": "mlp", "dataset": "synthetic", "epochs": 1, "dense_units": [8]},
        out=tmp_path / "run",
        verbose=0,
    )
    assert isinstance(run, kerasdrop.training.Run)
    report = kerasdrop.verify(run.directory / "model.keras")
    assert isinstance(report, kerasdrop.verification.Report) and report.ok
    result = kerasdrop.export(
        run.directory / "model.keras",
        name="mlp",
        repo=tmp_path / "export",
        formats=["savedmodel"],
        models_config=None,
    )
    assert isinstance(result, kerasdrop.exporting.ExportResult) and result.version == 1
    assert kerasdrop.training.Recipe().training.epochs == 20


def test_train_verify_export_are_plain_functions_with_their_real_signatures():
    import inspect

    for function, first_parameter in (
        (kerasdrop.train, "recipe_or_kwargs"),
        (kerasdrop.verify, None),
        (kerasdrop.export, None),
    ):
        assert inspect.isfunction(function), function
        parameters = list(inspect.signature(function).parameters)
        assert parameters and parameters != ["args", "kwargs"], parameters
        if first_parameter:
            assert parameters[0] == first_parameter
    assert "out" in inspect.signature(kerasdrop.train).parameters
    assert kerasdrop.train.__doc__.startswith("Trains a zoo model")


def test_no_kerasdrop_module_object_is_callable():
    import importlib
    import pkgutil
    import sys

    for info in pkgutil.walk_packages(kerasdrop.__path__, "kerasdrop."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    modules = [module for name, module in sys.modules.items() if name.startswith("kerasdrop")]
    assert len(modules) > 20
    assert [module.__name__ for module in modules if callable(module)] == []


CHANGELOG = pathlib.Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def _renames() -> list[tuple[str, list[str]]]:
    """(old module, [new modules]) from CHANGELOG.md's table of renamed import paths."""
    rows = re.findall(
        r"^\| `(kerasdrop[\w.]*)` \| (`kerasdrop[\w.]*`(?: and `kerasdrop[\w.]*`)*) \|",
        CHANGELOG.read_text(),
        flags=re.M,
    )
    return [(old, re.findall(r"`([\w.]+)`", new)) for old, new in rows]


def test_the_changelog_lists_each_renamed_import_path_once_the_new_one_imports_and_the_old_one_is_gone():
    renames = _renames()
    assert len(renames) >= 30 and len({old for old, _ in renames}) == len(renames)
    for old, new_modules in renames:
        for new in new_modules:
            assert importlib.util.find_spec(new) is not None, f"CHANGELOG.md: no module {new} (for {old})"
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


def test_importing_kerasdrop_installs_no_import_hook():
    import kerasdrop

    assert [finder for finder in sys.meta_path if type(finder).__module__.startswith("kerasdrop")] == []
    assert inspect.isfunction(kerasdrop.train) and inspect.isfunction(kerasdrop.export)
