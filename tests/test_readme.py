"""The README is true: its Python examples run and its zoo table is what `kerasdrop models` prints."""

import pathlib
import re

from kerasdrop.cli import main

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_every_python_example_runs_as_written(monkeypatch):
    from kerasdrop.zoo import registry

    # An example may register a model: keep the registry as the rest of the suite knows it.
    monkeypatch.setattr(registry, "_model_entrypoints", dict(registry._model_entrypoints))
    monkeypatch.setattr(registry, "_model_info", dict(registry._model_info))
    examples = _blocks("python")
    assert len(examples) >= 2 and "create_model" in examples[0] and "register_model" in examples[1]
    for example in examples:
        exec(compile(example, "README.md", "exec"), {"__name__": "__main__"})  # as a script runs it


def test_zoo_table_matches_what_kerasdrop_models_prints(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # rich sizes the table to the terminal; the README's is 80 wide
    readme_table = _blocks("text")[0].split("\n", 1)[1]
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert [line.rstrip() for line in printed.splitlines()] == [line.rstrip() for line in readme_table.splitlines()]
