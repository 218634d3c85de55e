"""What several commands share: the usage error, list parsers, and option groups defined once."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from kerasdrop._validation import parse_shape
from kerasdrop.errors import KerasdropError


class UsageError(KerasdropError, ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


def int_list(flag: str) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(",") if part.strip() != "")
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"Invalid value received for {flag}. Expected comma-separated integers, e.g. 512,256. "
                f"Received: {text!r}"
            ) from None

    return parse


def shape(flag: str, names: str) -> Callable[[str], tuple[int, ...]]:
    """The parser of a shape flag; `names` its dimensions, e.g. "H,W,C"."""
    example = {"H,W,C": "32x32x3 or 32,32,3", "H,W": "64x64 or 64,64"}[names]

    def parse(text: str) -> tuple[int, ...]:
        parsed = parse_shape(text)
        if parsed is None or len(parsed) != len(names.split(",")):
            raise argparse.ArgumentTypeError(
                f"Invalid value received for {flag}. Expected {names} as positive integers, e.g. {example}. "
                f"Received: {text!r}"
            )
        return parsed

    return parse


def float_list(flag: str) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            return tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"Invalid value received for {flag}. Expected a number or comma-separated numbers, e.g. 0.5 "
                f"or 0.5,0.3. Received: {text!r}"
            ) from None

    return parse


def add_head_options(parser: argparse.ArgumentParser) -> None:
    """The classifier head's flags, for every command that builds or trains a zoo model."""
    from kerasdrop.zoo.head import DROPOUT_KINDS

    parser.add_argument(
        "--dense-units",
        type=int_list("--dense-units"),
        metavar="N,N",
        help="hidden Dense widths of the head, e.g. 512,256 (default: the model's)",
    )
    parser.add_argument(
        "--dropout",
        type=float_list("--dropout"),
        metavar="R[,R]",
        help="dropout after each hidden Dense: one rate or one per layer (default: the model's)",
    )
    parser.add_argument(
        "--dropout-kind", choices=DROPOUT_KINDS, help=f"dropout layer kind (default: {DROPOUT_KINDS[0]})"
    )


def dropout_value(rates: tuple[float, ...] | None):
    """`--dropout 0.5` is one rate for every layer; `--dropout 0.5,0.3` one per layer."""
    if rates is None:
        return None
    return rates[0] if len(rates) == 1 else list(rates)


def quiet_tensorflow() -> None:
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


def print_report(report, as_json: bool) -> None:
    if as_json:
        print(report.to_json())
    else:
        report.print()


def print_flushed(line: str) -> None:
    print(line, flush=True)  # progress must show as it happens, also when stdout is a pipe
