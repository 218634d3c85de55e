"""`kerasdrop models` (the zoo table) and `kerasdrop describe` (one model's layers)."""

from __future__ import annotations

import argparse

from kerasdrop.cli._options import (
    UsageError,
    add_head_options,
    dropout_value,
    float_list,
    quiet_tensorflow,
    shape,
)


def register(commands) -> None:
    models = commands.add_parser("models", help="list the zoo: name, family, default head, parameters")
    models.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'vgg*' (default: *)")
    models.add_argument(
        "--keras-apps",
        action="store_true",
        help="also list keras_app:<Name> backbones (default: only when PATTERN starts with keras_app:)",
    )
    models.add_argument(
        "--num-classes", type=int, default=10, help="classes assumed for the parameter count (default: 10)"
    )
    models.set_defaults(handler=run_models)

    describe = commands.add_parser("describe", help="print the layer summary of one model")
    describe.add_argument("name", help="model name from `kerasdrop models`")
    describe.add_argument(
        "--input-shape",
        type=shape("--input-shape", "H,W,C"),
        metavar="HxWxC",
        help="input image shape, e.g. 32x32x3 or 32,32,3 (default: the model's, see `kerasdrop models`)",
    )
    describe.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    add_head_options(describe)
    describe.add_argument(
        "--conv-dropout",
        type=float,
        metavar="R",
        help="SpatialDropout2D rate after each conv block (default: off)",
    )
    describe.add_argument(
        "--input-range",
        type=float_list("--input-range"),
        metavar="LOW,HIGH",
        default=(0.0, 255.0),
        help="range of the raw pixels the model receives (default: 0,255)",
    )
    describe.set_defaults(handler=run_describe)


def run_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    from kerasdrop.zoo import list_models, model_info
    from kerasdrop.zoo.param_counts import parameter_counts

    include = True if args.keras_apps else None
    names = list_models(args.pattern, include_keras_apps=include)
    if not names:
        raise UsageError(f"No model matches {args.pattern!r}. Run `kerasdrop models` to list them all.")
    counts = parameter_counts(names, args.num_classes)  # cached: builds only models no cache knows
    table = Table(title=f"kerasdrop zoo — parameters for {args.num_classes} classes at the default input")
    for column in ("name", "family", "input", "hidden Dense", "dropout", "params"):
        table.add_column(column, justify="right" if column in ("dropout", "params") else "left", no_wrap=True)
    for name in names:
        info = model_info(name)
        table.add_row(
            name,
            info.family,
            "x".join(str(d) for d in info.default_input_shape),
            "-".join(str(units) for units in info.default_dense_units) or "none",
            f"{info.default_dropout:g}",
            f"{counts[name] / 1e6:,.2f}M",
        )
    console = Console()
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum  # unclamped
    if needed > console.width:  # a narrow terminal or a pipe must not cut names: wider lines instead
        console = Console(width=needed)
    console.print(table)
    if not args.keras_apps and not args.pattern.startswith("keras_app:"):
        print(
            "Also: keras_app:<Name> puts the same head on any keras.applications backbone "
            "(`kerasdrop models 'keras_app:*'`)."
        )
    return 0


def run_describe(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from kerasdrop.zoo import create_model
    from kerasdrop.zoo.head import describe_head
    from kerasdrop.zoo.rewire import head_dropout_layers

    model = create_model(
        args.name,
        num_classes=args.num_classes,
        input_shape=args.input_shape,
        dense_units=args.dense_units,
        dropout=dropout_value(args.dropout),
        dropout_kind=args.dropout_kind,
        conv_dropout=args.conv_dropout,
        input_range=tuple(args.input_range),
    )
    model.summary()
    print("head: " + describe_head(model))
    print(f"dropout layers in the head: {len(head_dropout_layers(model))}")
    return 0
