"""kerasdrop/layout.py owns the model repository's layout: no other module spells a file name of it,
and its readers are the ones exporting's files are read back with (golden.json, models.config)."""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest

from kerasdrop import layout

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1] / "kerasdrop"
# The format files of a version directory and of the repository root (the other names layout.py holds,
# assets.extra, variables, the model card's, the formats added this round, are not scanned yet).
NAMES = sorted(
    {
        layout.SAVED_MODEL_FILE,
        layout.ONNX_FILE,
        layout.INT8_ONNX_FILE,
        layout.GOLDEN_FILE,
        layout.VERIFICATION_FILE,
        layout.WARMUP_FILE,
        layout.MODELS_CONFIG_FILE,
    }
)
_TOKEN = re.compile(r"[\w.\-]+")


def _docstrings(tree) -> set[int]:
    """ids of the string constants that are docstrings (prose, not a name the code uses)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def spelled_names(source: str) -> list[tuple[int, str]]:
    """`(line, name)` of each layout file name that a string literal of `source` spells (an
    f-string's literal parts too; docstrings and comments are prose and not counted)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            tokens = {token.strip(".") for token in _TOKEN.findall(node.value)} | set(node.value.split("/"))
            found += [(node.lineno, name) for name in NAMES if name in tokens]
    return found


def test_the_names_scanned_are_the_repository_files():
    assert {
        "saved_model.pb",
        "model.onnx",
        "model.int8.onnx",
        "golden.json",
        "verification.json",
        "tf_serving_warmup_requests",
        "models.config",
    } <= set(NAMES)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('path = directory / "model.onnx"', [(1, "model.onnx")]),
        ('default = f"{repo}/models.config"', [(1, "models.config")]),
        ('message = f"{path} is not a SavedModel directory (no saved_model.pb)."', [(1, "saved_model.pb")]),
        ('"""Reads `golden.json`."""\nx = GOLDEN_FILE  # golden.json', []),
        ('def f():\n    """model.onnx beside it."""\n    return "model.onnx.bak" + "my_model.onnx"', []),
    ],
)
def test_the_scan_finds_a_name_in_code_and_not_in_prose(source, expected):
    assert spelled_names(source) == expected


def test_no_module_but_layout_spells_a_repository_file_name():
    spelled = [
        f"{path.relative_to(PACKAGE_ROOT.parent)}:{line}: {name!r}"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if path != PACKAGE_ROOT / "layout.py"
        for line, name in spelled_names(path.read_text())
    ]
    assert spelled == [], "import the name from kerasdrop/layout.py instead:\n" + "\n".join(spelled)


def test_read_golden_is_none_without_the_file_and_names_the_file_when_it_is_unusable(tmp_path):
    assert layout.read_golden(tmp_path) is None
    path = tmp_path / layout.GOLDEN_FILE
    path.write_text(json.dumps({"format": 2}))
    with pytest.raises(
        layout.RepositoryFileError,
        match=rf"^{re.escape(str(path))}: expected 'format': 1; "
        r"received 2",
    ):
        layout.read_golden(tmp_path)
    path.write_text(json.dumps({"format": 1, "requests": "../outside"}))
    with pytest.raises(layout.RepositoryFileError, match="'requests' must name a file inside the version"):
        layout.read_golden(tmp_path)
    document = {"format": 1, "requests": layout.WARMUP_PATH, "outputs": []}
    (tmp_path / layout.GOLDEN_FILE).write_text(json.dumps(document))
    assert layout.read_golden(tmp_path) == document


def test_exporting_and_serving_read_models_config_through_layout(tmp_path):
    """The one reader: export's merge and serve's settings both see what layout.read_models_config
    returns, and its error (file and line) reaches both."""
    from kerasdrop.exporting import models_config
    from kerasdrop.serving.models import repository

    config = tmp_path / layout.MODELS_CONFIG_FILE
    config.write_text(
        "# kept\nmodel_config_list {\n  config { name: 'a' base_path: '/models/a'\n"
        "    version_labels { key: 'stable' value: 3 } }\n}\n"
    )
    header, proto = models_config.models_config_to_merge(config)
    assert header == "# kept\n" and proto == layout.read_models_config(config)
    assert repository.models_config_settings(config).labels == {"a": {"stable": 3}}
    config.write_text("model_config_list {\n  config { name: 'a' nonsense: 1 }\n}\n")
    where = re.escape(str(config))
    with pytest.raises(layout.ModelsConfigError, match=rf"^{where}:2: not a valid ModelServerConfig"):
        repository.models_config_settings(config)
    with pytest.raises(ValueError, match=rf"{where}:2: not a valid ModelServerConfig"):
        models_config.models_config_to_merge(config)


def test_the_warmup_path_is_where_tf_serving_reads_it(tmp_path):
    assert layout.warmup_path(tmp_path) == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    assert layout.MODELS_CONFIG_BESIDE_REPO == "{repo}/models.config"
