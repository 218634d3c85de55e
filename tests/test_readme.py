"""The README and the documentation pages (docs/*.md) are true: their Python examples run, their zoo
table is what `kerasdrop models` prints, their kerasdrop commands parse, and their curl commands are
complete and answered by a real `kerasdrop serve`."""

import json
import pathlib
import re
import shlex

import pytest

from kerasdrop.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(language, pages=PAGES):
    """(page name, block text) of every fenced block of `language`, in page order."""
    found = []
    for page in pages:
        for block in re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M):
            found.append((str(page.relative_to(ROOT)), block))
    return found


def test_the_front_page_and_the_zoo_page_hold_the_examples_the_tests_below_run():
    assert any("create_model" in block for _, block in _blocks("python", [README]))
    assert any("register_model" in block for _, block in _blocks("python", [ROOT / "docs" / "zoo.md"]))
    assert len(README.read_text().splitlines()) <= 250, "README.md is the front page: move detail to docs/"


PYTHON_EXAMPLES = _blocks("python")


@pytest.mark.parametrize("page, example", PYTHON_EXAMPLES, ids=[page for page, _ in PYTHON_EXAMPLES])
def test_every_python_example_runs_as_written(monkeypatch, page, example):
    from kerasdrop.zoo import registry

    # An example may register a model: keep the registry as the rest of the suite knows it.
    monkeypatch.setattr(registry, "_model_entrypoints", dict(registry._model_entrypoints))
    monkeypatch.setattr(registry, "_model_info", dict(registry._model_info))
    exec(compile(example, page, "exec"), {"__name__": "__main__"})  # as a script runs it


def test_zoo_table_matches_what_kerasdrop_models_prints(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # rich sizes the table to the terminal; the page's is 80 wide
    tables = [block for _, block in _blocks("text") if block.startswith("$ kerasdrop models\n")]
    assert len(tables) == 1, "one page (docs/zoo.md) shows what `kerasdrop models` prints"
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    page_table = tables[0].split("\n", 1)[1]
    shown = [line.rstrip() for line in page_table.splitlines()]
    assert [line.rstrip() for line in printed.splitlines()] == shown


# --- curl -----------------------------------------------------------------------------------------

SHELL_SUBSTITUTION = re.compile(r"\$\([^)]*\)")


def _shell_commands(block):
    """The commands of a bash block as argv lists: continuation lines joined, and a quoted string
    that spans lines (a JSON body written out over several) kept whole, as the shell reads it."""
    commands, pending = [], ""
    for line in re.sub(r"\\\n", " ", block).splitlines(keepends=True):
        pending += line
        try:
            # The shell would run $(base64 ...): the test puts a stand-in string there.
            argv = shlex.split(SHELL_SUBSTITUTION.sub("STANDIN", pending), comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        if argv and argv[-1] == "&":  # run in the background: the command is the same
            argv.pop()
        if argv:
            commands.append(argv)
        pending = ""
    assert not pending, f"a quote left open in:\n{block}"
    return commands


def _curl_commands():
    """(page, argv) of every curl command in a bash block of the pages."""
    return [
        (page, argv)
        for page, block in _blocks("bash")
        for argv in _shell_commands(block)
        if argv[0] == "curl"
    ]


def _curl_request(argv):
    """(method, url, body or None, other options) of a curl argv."""
    body, url, options = None, None, []
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument in ("-d", "--data", "--data-binary"):
            body = next(arguments)
        elif argument in ("--cacert", "--cert", "--key", "-H", "-X"):
            options.append((argument, next(arguments)))
        elif argument.startswith("-"):
            raise AssertionError(f"a curl option this test does not know: {argument} in {shlex.join(argv)}")
        else:
            url = argument
    return ("POST" if body is not None else "GET"), url, body, options


CURLS = _curl_commands()


def test_the_pages_show_curl_commands_over_both_protocols():
    urls = [_curl_request(argv)[1] for _, argv in CURLS]
    assert any(url.endswith(":predict") for url in urls) and any(url.endswith("/infer") for url in urls)


@pytest.mark.parametrize("page, argv", CURLS, ids=[page for page, _ in CURLS])
def test_every_curl_command_is_complete(page, argv):
    method, url, body, _ = _curl_request(argv)
    assert url and re.match(r"https?://", url), f"{page}: no URL in {shlex.join(argv)}"
    assert "..." not in shlex.join(argv) and "…" not in shlex.join(argv), f"{page}: an elided curl command"
    if body is not None:
        json.loads(body)  # complete JSON, not a sketch of it


@pytest.fixture(scope="module")
def lenet5_server(tmp_path_factory):
    """`kerasdrop serve` of a lenet5 exported for 8x8x1 digits of 0..16, as the demo's."""
    import keras

    import kerasdrop
    from kerasdrop.exporting import export
    from tests.serving.conftest import running_server

    keras.utils.set_random_seed(5)
    model = kerasdrop.create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    repo = tmp_path_factory.mktemp("docs") / "export"
    export(model, name="lenet5", repo=repo, formats=("savedmodel",), models_config=None)
    with running_server(repo=str(repo)) as server:
        yield server


def _runs_against_the_demo_model(argv) -> bool:
    """A plain-HTTP call on the default port that names no model or the demo's lenet5, and whose
    body needs nothing from the shell (a file of the reader's)."""
    url = _curl_request(argv)[1]
    return (
        url.startswith("http://127.0.0.1:8501/")
        and ("/models/" not in url or "/models/lenet5" in url)
        and not any("STANDIN" in argument for argument in argv)
    )


LIVE_CURLS = [(page, argv) for page, argv in CURLS if _runs_against_the_demo_model(argv)]


def test_the_curl_commands_about_the_demo_model_are_the_ones_run_below():
    assert len(LIVE_CURLS) >= 5, LIVE_CURLS


@pytest.mark.parametrize("page, argv", LIVE_CURLS, ids=[page for page, _ in LIVE_CURLS])
def test_every_plain_curl_command_is_answered_by_kerasdrop_serve(lenet5_server, page, argv):
    import urllib.request

    method, url, body, _ = _curl_request(argv)
    url = url.replace("127.0.0.1:8501", f"127.0.0.1:{lenet5_server.rest_port}")
    request = urllib.request.Request(url, data=body.encode() if body else None, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:  # an HTTP error status raises
        assert response.status == 200
        json.loads(response.read())


# --- kerasdrop commands -----------------------------------------------------------------------------

KERASDROP_COMMANDS = [
    (page, argv)
    for page, block in _blocks("bash")
    for argv in _shell_commands(block)
    if argv[0] == "kerasdrop"
]


def test_every_kerasdrop_command_the_pages_show_parses_with_the_clis_own_parser(capsys):
    """Each flag a command names is one its subcommand has, spelled in full (argparse would take an
    abbreviation), and a command written out (not a synopsis with [optional] parts) parses, so a
    renamed or removed flag cannot stay in the documentation."""
    from kerasdrop.cli import build_parser

    assert len(KERASDROP_COMMANDS) >= 30
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    wrong = []
    for page, argv in KERASDROP_COMMANDS:
        shown = f"{page}: {shlex.join(argv)}"
        known = set((commands.get(argv[1]) or parser)._option_string_actions)
        flags = {flag for argument in argv for flag in re.findall(r"^\[?(--[a-z][a-z0-9_-]*)", argument)}
        wrong += [f"{shown} ({flag})" for flag in sorted(flags - known)]
        if any("[" in argument for argument in argv):
            continue
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exit_:
            if exit_.code:
                wrong.append(f"{shown} ({capsys.readouterr().err.strip().splitlines()[-1]})")
    assert wrong == [], "commands the CLI does not take:\n" + "\n".join(wrong)
