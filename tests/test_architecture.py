"""The import graph of kerasdrop/, read with `ast` (nothing imported): no cycles, and data flows one way.

Layers, bottom to top, as docs/architecture.md ("Layers") draws them: the private utility modules and
the repository layout, then `zoo` and `data`, then `training` and `verification`, then `exporting`,
then `serving`, then `cli` and `demo`. A module may import its own package and any package of a lower
layer, never a higher one nor a sibling of its own layer. An import inside a function counts: it runs
too, only later. The page's tables must list exactly the layers enforced here, and the code its
request paths name must exist, so the page cannot drift from the code unnoticed.
"""

from __future__ import annotations

import ast
import io
import pathlib
import re
import tokenize

import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1] / "kerasdrop"
ARCHITECTURE_PAGE = PACKAGE_ROOT.parent / "docs" / "architecture.md"

# The top-level part of each module name (kerasdrop.<part>...) and its layer.
LAYERS = {
    "_util": 0,  # kerasdrop/_*.py, errors.py (the error types) and the lazy kerasdrop/__init__.py
    # layout: the model repository's file names and readers, which exporting writes and serving reads
    # through; beside zoo and data, above the _util modules for the error types its readers raise
    "zoo": 1,
    "data": 1,
    "layout": 1,
    "training": 2,
    "verification": 2,
    "exporting": 3,
    "serving": 4,
    "cli": 5,
    "demo": 5,
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the kerasdrop modules it imports (`from package import submodule` names the submodule)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def _layer_key(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1].startswith("_") or parts[1] == "errors":
        return "_util"
    return parts[1]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_belongs_to_a_layer():
    unplaced = sorted({_layer_key(module) for module in _modules()} - set(LAYERS))
    assert not unplaced, (
        f"kerasdrop.{', kerasdrop.'.join(unplaced)} is in no layer: add it to LAYERS in "
        "tests/test_architecture.py and docs/architecture.md where the data flow puts it"
    )


def test_import_graph_has_no_cycles():
    assert find_cycles(import_graph()) == []


def test_imports_only_go_down_the_layers():
    wrong = []
    for module, targets in sorted(import_graph().items()):
        source = _layer_key(module)
        for target in sorted(targets):
            destination = _layer_key(target)
            if destination == source:
                continue
            if LAYERS.get(destination, -1) >= LAYERS.get(source, -1):
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports that go up or sideways between layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"a.py": "from kerasdrop import b", "b.py": "import kerasdrop.a"}, [["kerasdrop.a", "kerasdrop.b"]]),
        (
            {"a.py": "def f():\n    from kerasdrop.b import x", "b.py": "from kerasdrop.a import y"},
            [["kerasdrop.a", "kerasdrop.b"]],
        ),
        ({"a.py": "from kerasdrop.b import x", "b.py": "import os"}, []),
        ({"p/__init__.py": "from kerasdrop.p.q import x", "p/q.py": "from . import r", "p/r.py": ""}, []),
        (
            {"p/__init__.py": "", "p/q.py": "from .r import x", "p/r.py": "from kerasdrop.p import q"},
            [["kerasdrop.p.q", "kerasdrop.p.r"]],
        ),
    ],
)
def test_the_cycle_finder_finds_cycles_and_only_cycles(tmp_path, monkeypatch, files, expected):
    root = tmp_path / "kerasdrop"
    for relative, text in {"__init__.py": "", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE_ROOT"]), "PACKAGE_ROOT", root)
    assert find_cycles(import_graph()) == expected


# Sizes are counted in logical lines (statements, as the tokenizer ends them: a call wrapped over
# six lines is one), so `ruff format`'s wrapping does not change them. 50 is a screen of code; past
# it a function is split by responsibility, as train/export/cli were.
MAX_FUNCTION_STATEMENTS = 50


def logical_line_ends(source: str) -> list[int]:
    """The line on which each logical line of `source` ends (comments and blank lines are none)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [token.start[0] for token in tokens if token.type == tokenize.NEWLINE]


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        source = path.read_text()
        ends = logical_line_ends(source)
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                statements = sum(1 for line in ends if node.lineno <= line <= node.end_lineno)
                if statements > MAX_FUNCTION_STATEMENTS:
                    long.append(
                        f"{path.relative_to(PACKAGE_ROOT.parent)}:{node.lineno} {node.name} "
                        f"({statements} logical lines)"
                    )
    assert long == [], "functions longer than a screen:\n" + "\n".join(long)


def test_sizes_are_counted_in_logical_lines_not_wrapped_ones():
    wrapped = "def f():\n    return g(\n        1,\n        2,\n    )  # one statement\n\n\nx = 1\n"
    assert logical_line_ends(wrapped) == [1, 5, 8]  # the def, the return wrapped over four lines, x = 1


# Inside kerasdrop/serving/: the layers its package docstring draws, bottom to top. The two leaves
# (errors, limits) are read by all; the model lifecycle knows no protocol; the protocols know no
# process; the process layer wires them. Nothing else lives at serving's top level.
SERVING_LAYERS = {"errors": 0, "limits": 0, "models": 1, "protocols": 2, "process": 3}


def _serving_part(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["kerasdrop", "serving"] or len(parts) == 2:
        return None
    return parts[2]


def test_serving_is_laid_out_by_layer():
    unplaced = sorted(
        {part for part in map(_serving_part, _modules()) if part is not None} - set(SERVING_LAYERS)
    )
    assert unplaced == [], (
        f"kerasdrop.serving.{', kerasdrop.serving.'.join(unplaced)} is in no serving layer: "
        "move it into models/, protocols/ or process/ (kerasdrop/serving/__init__.py)"
    )


def serving_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports inside kerasdrop.serving that go up or sideways between its layers."""
    wrong = []
    for module, targets in sorted(graph.items()):
        source = _serving_part(module)
        if source is None:
            continue
        for target in sorted(targets):
            destination = _serving_part(target)
            if destination is None or destination == source:
                continue
            if SERVING_LAYERS.get(destination, -1) >= SERVING_LAYERS.get(source, -1):
                wrong.append(f"{module} -> {target}")
    return wrong


def test_serving_imports_only_go_down_its_layers():
    assert serving_violations(import_graph()) == [], "serving imports that go up or sideways:\n" + "\n".join(
        serving_violations(import_graph())
    )


@pytest.mark.parametrize(
    "source, target, allowed",
    [
        ("protocols/a.py", "kerasdrop.serving.models.b", True),
        ("process/a.py", "kerasdrop.serving.protocols.b", True),
        ("models/a.py", "kerasdrop.serving.limits", True),
        ("models/a.py", "kerasdrop.serving.protocols.b", False),
        ("protocols/a.py", "kerasdrop.serving.process.b", False),
        ("models/a.py", "kerasdrop.serving.process.b", False),
    ],
)
def test_the_serving_layer_rule_tells_down_from_up(source, target, allowed):
    graph = {"kerasdrop.serving." + source[:-3].replace("/", "."): {target}}
    assert (serving_violations(graph) == []) is allowed


def test_one_protocol_never_imports_another():
    wrong = []
    for module, targets in sorted(import_graph().items()):
        parts = module.split(".")
        if parts[:3] != ["kerasdrop", "serving", "protocols"] or len(parts) < 5:
            continue
        for target in targets:
            other = target.split(".")
            if other[:3] == parts[:3] and len(other) >= 5 and other[3] != parts[3]:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], (
        "a protocol imports another (share the code through protocols/ itself):\n" + "\n".join(sorted(wrong))
    )


# A module a reader holds in mind at once, in logical lines; past it, one file holds two concepts.
MAX_MODULE_STATEMENTS = 300


def test_no_module_is_longer_than_a_reader_holds_in_mind():
    long = [
        f"{path.relative_to(PACKAGE_ROOT.parent)} ({statements} logical lines)"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if (statements := len(logical_line_ends(path.read_text()))) > MAX_MODULE_STATEMENTS
    ]
    assert long == [], f"modules over {MAX_MODULE_STATEMENTS} logical lines:\n" + "\n".join(long)


# --- docs/architecture.md says what this file enforces ----------------------------------------------


def _page_layer_tables() -> list[dict[str, int]]:
    """Each `| layer | packages | ... |` table of docs/architecture.md as {package: layer}, in page order."""
    tables, current = [], None
    for line in ARCHITECTURE_PAGE.read_text().splitlines():
        if line.startswith("| layer | packages |"):
            current = {}
            tables.append(current)
        elif current is not None and (row := re.match(r"\| (\d+) \| ([^|]*) \|", line)):
            current.update({package: int(row[1]) for package in re.findall(r"`(\w+)`", row[2])})
        elif not line.startswith("|"):
            current = None
    return tables


def test_the_architecture_page_lists_the_layers_this_test_enforces():
    package_layers, serving_layers = _page_layer_tables()
    assert package_layers == LAYERS, "docs/architecture.md's layer table is not LAYERS: change both"
    assert serving_layers == SERVING_LAYERS, "docs/architecture.md's serving table is not SERVING_LAYERS"


def _defines(path: pathlib.Path, dotted: str) -> bool:
    """Whether the module at `path` defines `dotted`: a function or class, or `Class.method`."""
    scope = ast.parse(path.read_text()).body
    for part in dotted.split("."):
        definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        found = [node for node in scope if isinstance(node, definitions) and node.name == part]
        if not found:
            return False
        scope = found[0].body
    return True


def test_the_architecture_page_names_files_and_functions_that_exist():
    text = ARCHITECTURE_PAGE.read_text()
    files = set(re.findall(r"`(kerasdrop/[\w/]+\.py)`", text))
    assert len(files) >= 10 and not [f for f in sorted(files) if not (PACKAGE_ROOT.parent / f).is_file()]
    # A request's path: "N. `kerasdrop/<file>.py` — `Name`: ...", one step per line.
    steps = re.findall(r"^\d+\. `(kerasdrop/[\w/]+\.py)` — `([\w.]+)`", text, flags=re.M)
    assert len(steps) >= 10, "the REST and gRPC request paths are numbered steps naming a file and a function"
    missing = [f"{file} {name}" for file, name in steps if not _defines(PACKAGE_ROOT.parent / file, name)]
    assert missing == [], "docs/architecture.md names code that is not there:\n" + "\n".join(missing)
