"""The `kerasdrop` command line: thin commands over the library.

Nothing heavy is imported at module level, so `kerasdrop --help` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


# --- argument parsing helpers (shared options are defined once) -------------------------------

def _int_list(flag: str) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(",") if part.strip() != "")
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"Invalid value received for {flag}. Expected comma-separated integers, e.g. 512,256. "
                f"Received: {text!r}"
            ) from None

    return parse


def _float_list(flag: str) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"Invalid value received for {flag}. Expected a number or comma-separated numbers, e.g. 0.5 "
                f"or 0.5,0.3. Received: {text!r}"
            ) from None
        return values

    return parse


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that builds a zoo model."""
    parser.add_argument("--input-shape", type=_int_list("--input-shape"), metavar="H,W,C",
                        help="input image shape (default: the model's, see `kerasdrop models`)")
    parser.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    parser.add_argument("--dense-units", type=_int_list("--dense-units"), metavar="N,N",
                        help="hidden Dense widths of the head, e.g. 512,256 (default: the model's)")
    parser.add_argument("--dropout", type=_float_list("--dropout"), metavar="R[,R]",
                        help="dropout after each hidden Dense: one rate or one per layer (default: the model's)")
    parser.add_argument("--dropout-kind", choices=("standard", "gaussian", "alpha", "none"),
                        help="dropout layer kind (default: standard)")
    parser.add_argument("--conv-dropout", type=float, metavar="R",
                        help="SpatialDropout2D rate after each conv block (default: off)")
    parser.add_argument("--input-range", type=_float_list("--input-range"), metavar="LOW,HIGH", default=(0.0, 255.0),
                        help="range of the raw pixels the model receives (default: 0,255)")


def _model_kwargs(args: argparse.Namespace) -> dict:
    dropout = args.dropout
    if dropout is not None and len(dropout) == 1:
        dropout = dropout[0]
    return dict(
        num_classes=args.num_classes,
        input_shape=args.input_shape,
        dense_units=args.dense_units,
        dropout=dropout,
        dropout_kind=args.dropout_kind,
        conv_dropout=args.conv_dropout,
        input_range=tuple(args.input_range),
    )


def build_parser() -> argparse.ArgumentParser:
    from kerasdrop import __version__

    parser = argparse.ArgumentParser(
        prog="kerasdrop",
        description="Keras model zoo with Dropout after Dense layers; export that proves inference mode.",
    )
    parser.add_argument("--version", action="version", version=f"kerasdrop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    models = commands.add_parser("models", help="list the zoo: name, family, default head, parameters")
    models.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'vgg*' (default: *)")
    models.add_argument("--keras-apps", action="store_true",
                        help="also list keras_app:<Name> backbones (default: only when PATTERN starts with keras_app:)")
    models.add_argument("--num-classes", type=int, default=10,
                        help="classes assumed for the parameter count (default: 10)")
    models.set_defaults(handler=_cmd_models)

    describe = commands.add_parser("describe", help="print the layer summary of one model")
    describe.add_argument("name", help="model name from `kerasdrop models`")
    _add_model_options(describe)
    describe.set_defaults(handler=_cmd_describe)
    return parser


# --- commands ---------------------------------------------------------------------------------

def _quiet_tensorflow() -> None:
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


def _cmd_models(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from rich.console import Console
    from rich.table import Table

    import keras

    from kerasdrop.zoo import create_model, list_models, model_info

    include = True if args.keras_apps else None
    names = list_models(args.pattern, include_keras_apps=include)
    if not names:
        raise UsageError(f"No model matches {args.pattern!r}. Run `kerasdrop models` to list them all.")
    table = Table(title=f"kerasdrop zoo — parameters for {args.num_classes} classes at the default input")
    for column in ("name", "family", "input", "hidden Dense", "dropout", "params"):
        table.add_column(column, justify="right" if column in ("dropout", "params") else "left")
    for name in names:
        info = model_info(name)
        model = create_model(name, num_classes=args.num_classes)
        params = model.count_params()
        del model
        keras.backend.clear_session()
        table.add_row(
            name, info.family, "x".join(str(d) for d in info.default_input_shape),
            "-".join(str(units) for units in info.default_dense_units) or "none",
            f"{info.default_dropout:g}", f"{params / 1e6:,.2f}M",
        )
    Console().print(table)
    if not args.keras_apps and not args.pattern.startswith("keras_app:"):
        print("Also: keras_app:<Name> puts the same head on any keras.applications backbone "
              "(`kerasdrop models 'keras_app:*'`).")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from kerasdrop.zoo import create_model
    from kerasdrop.zoo.rewire import head_dropout_layers

    model = create_model(args.name, **_model_kwargs(args))
    model.summary()
    print("head: " + describe_head(model))
    print(f"dropout layers in the head: {len(head_dropout_layers(model))}")
    return 0


def describe_head(model) -> str:
    """One line: `fc1 Dense(512, relu) -> fc1_dropout Dropout(0.5) -> ... -> predictions Dense(10, softmax)`."""
    parts = []
    for layer in model.layers:
        if layer.name.startswith("fc") or layer.name == "predictions":
            config = layer.get_config()
            if "units" in config:
                parts.append(f"{layer.name} Dense({config['units']}, {config['activation']})")
            elif "rate" in config:
                parts.append(f"{layer.name} {type(layer).__name__}({config['rate']:g})")
            else:
                parts.append(f"{layer.name} {type(layer).__name__}")
    return " -> ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, ValueError, TypeError) as error:
        # Library functions raise ValueError/TypeError for bad input, in the one error template.
        print(f"kerasdrop {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
