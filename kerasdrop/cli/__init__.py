"""The `kerasdrop` command line: thin commands over the library, one module per group of commands.

Each command module has a `register(commands)` that adds its subcommands next to their handlers (as
the Hugging Face CLI registers a subcommand per command). Nothing heavy is imported at module level,
so `kerasdrop --help` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kerasdrop.cli import (
    exporting,
    models,
    predict,
    promote,
    serving,
    studies,
    training,
    verification,
)
from kerasdrop.cli._options import UsageError
from kerasdrop.errors import KerasdropError

__all__ = ["UsageError", "build_parser", "main"]

# In the order `kerasdrop --help` lists them: build, train, verify, export, serve, ask, promote.
COMMAND_MODULES = (models, training, studies, verification, exporting, serving, predict, promote)


def build_parser() -> argparse.ArgumentParser:
    from kerasdrop import __version__

    parser = argparse.ArgumentParser(
        prog="kerasdrop",
        description="Keras model zoo with Dropout after Dense layers; export that proves inference mode.",
    )
    parser.add_argument("--version", action="version", version=f"kerasdrop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KerasdropError as error:
        # Only kerasdrop's own errors (bad input, refused operations) become one line; anything
        # else is a bug and keeps its traceback.
        print(f"kerasdrop {args.command}: error: {error}", file=sys.stderr)
        return 2
