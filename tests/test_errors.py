"""One family of error types: what the library raises on purpose is a KerasdropError; the CLI maps those
(and only those) to one line and exit 2, so a bug keeps its traceback."""

import importlib
import inspect
import pkgutil

import pytest

import kerasdrop
from kerasdrop import cli
from kerasdrop.errors import InvalidArgumentError, KerasdropError

# Deliberately not KerasdropErrors: Ctrl-C stays a KeyboardInterrupt (the CLI exits 130), the
# verifier's internal signal that a probe could not run, which it catches and reports as a finding,
# and the server's internal signals, each caught beside where it is raised and answered as an HTTP or
# gRPC status (a body over the limit or cut short, a head refused, a synchronous servicer's abort) or
# as a UsageError naming the file (a PEM that does not load). (kerasdrop/serving/ had no
# __init__.py before 0.2's layers, so this walk never reached it.)
NOT_ERRORS = {
    "TrainingInterrupted",
    "ProbeFailed",
    "BodyTooLarge",
    "ClientGone",
    "_Refused",
    "_Abort",
    "_PemError",
}
NOT_ERRORS.add("Interrupted")  # SIGTERM raised as Ctrl-C is (kerasdrop/training/interrupts.py)


def _kerasdrop_exception_classes():
    classes = {}
    for info in pkgutil.walk_packages(kerasdrop.__path__, "kerasdrop."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("kerasdrop")
            ):
                classes[f"{value.__module__}.{name}"] = value
    return classes


def test_every_exception_kerasdrop_defines_is_a_kerasdrop_error():
    classes = _kerasdrop_exception_classes()
    assert len(classes) >= 8, sorted(classes)
    stray = sorted(
        name
        for name, value in classes.items()
        if not issubclass(value, KerasdropError) and value.__name__ not in NOT_ERRORS
    )
    assert stray == []


def test_argument_errors_are_still_value_errors_in_the_one_template():
    with pytest.raises(ValueError, match="^Invalid value received for argument `num_classes`") as raised:
        kerasdrop.create_model("mlp", num_classes=1)
    assert isinstance(raised.value, InvalidArgumentError)


def test_cli_turns_a_kerasdrop_error_into_one_line_and_exit_2(monkeypatch, capsys):
    def refuse(args):
        raise InvalidArgumentError("Invalid value received for argument `x`. Expected 1. Received: x=2")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser, "describe", refuse))
    assert cli.main(["describe", "mlp"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kerasdrop describe: error: Invalid value received for argument `x`. Expected 1. Received: x=2"
    )


def test_cli_lets_a_bug_keep_its_traceback(monkeypatch):
    def buggy(args):
        return len(None)  # a TypeError from a bug, not from bad input

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _with_handler(parser, "describe", buggy))
    with pytest.raises(TypeError, match="has no len"):
        cli.main(["describe", "mlp"])


def _with_handler(parser, command, handler):
    for action in parser._subparsers._group_actions:
        action.choices[command].set_defaults(handler=handler)
    return parser
