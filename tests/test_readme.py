"""The README is true: its Python examples run and its zoo table is what `kerasdrop models` prints."""

import pathlib
import re

from kerasdrop.cli import main

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_api_example_runs():
    example = _blocks("python")[0]
    assert "create_model" in example
    exec(compile(example, "README.md", "exec"), {})


def test_zoo_table_matches_what_kerasdrop_models_prints(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # rich sizes the table to the terminal; the README's is 80 wide
    readme_table = _blocks("text")[0].split("\n", 1)[1]
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert [line.rstrip() for line in printed.splitlines()] == [line.rstrip() for line in readme_table.splitlines()]
