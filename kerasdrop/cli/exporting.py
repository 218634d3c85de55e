"""`kerasdrop export`: verify, then publish SavedModel + ONNX into a TF Serving model repository."""

from __future__ import annotations

import argparse
import sys

from kerasdrop.cli._options import print_report, quiet_tensorflow
from kerasdrop.exporting.formats import DEFAULT_FORMATS, FORMATS
from kerasdrop.layout import (
    INT8_ONNX_FILE,
    MODELS_CONFIG_BESIDE_REPO,
    MODELS_CONFIG_FILE,
    ONNX_FILE,
    OPENVINO_BIN_FILE,
    OPENVINO_XML_FILE,
    TFLITE_FILE,
)


def register(commands) -> None:
    export = commands.add_parser(
        "export",
        help="verify a .keras model, then publish SavedModel + ONNX into a TF Serving repository",
        description="Nothing is published unless the model and the written artefacts pass verification. "
        "Exit 0: published; 1: refused (the report says why); 2: unusable input.",
    )
    export.add_argument("model", help="the .keras file (e.g. runs/demo/model.keras)")
    export.add_argument("--name", required=True, help="model name in the repository and in serving URLs")
    export.add_argument("--repo", default="export", help="model repository directory (default: export)")
    export.add_argument(
        "--version", type=int, help="version to publish (default: the next integer; never overwrites)"
    )
    export.add_argument(
        "--formats",
        default=",".join(DEFAULT_FORMATS),
        help=f"comma-separated, savedmodel among them, of {', '.join(FORMATS)}: "
        f"{ONNX_FILE}, {TFLITE_FILE} (LiteRT), {OPENVINO_XML_FILE} + {OPENVINO_BIN_FILE} "
        "(OpenVINO IR) beside "
        f"the SavedModel, each re-verified (default: {','.join(DEFAULT_FORMATS)})",
    )
    export.add_argument(
        "--mc-samples",
        type=int,
        metavar="N",
        help="add an mc_dropout signature: mean and stddev over N passes with dropout on (default: off)",
    )
    export.add_argument(
        "--image-bytes",
        action="store_true",
        help='add a serving_bytes signature taking encoded JPEG/PNG strings ({"b64": ...} over REST), '
        "decoded and resized in the graph (default: off)",
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help=f"also write {INT8_ONNX_FILE} (static QDQ, calibrated on the run's training "
        "data), published only if its accuracy, probabilities, NLL and ECE on the run's test "
        "split hold against float32; needs a run's model.keras (default: off)",
    )
    export.add_argument(
        "--int8-max-drop",
        type=float,
        default=0.5,
        metavar="POINTS",
        help="largest accuracy drop, in percentage points, that --int8 accepts (default: 0.5)",
    )
    # None: the gate's own defaults (kerasdrop.exporting.int8.Int8Limits), which the export prints beside each figure.
    export.add_argument(
        "--int8-max-probability-error",
        type=float,
        metavar="P",
        help="largest change of any class probability on any test image that --int8 accepts "
        "(default: Int8Limits', 0.1)",
    )
    export.add_argument(
        "--int8-max-nll-increase",
        type=float,
        metavar="NATS",
        help="largest rise of the test NLL over float32 that --int8 accepts (default: Int8Limits', 0.05)",
    )
    export.add_argument(
        "--int8-max-ece-increase",
        type=float,
        metavar="ECE",
        help="largest rise of the test ECE (15 bins) over float32 that --int8 accepts "
        "(default: Int8Limits', 0.02)",
    )
    export.add_argument(
        "--models-config",
        default=MODELS_CONFIG_BESIDE_REPO,
        help="ModelServerConfig file kept listing every model; hand-written entries and fields "
        f"are kept (default: {MODELS_CONFIG_FILE} inside --repo)",
    )
    export.add_argument(
        "--base-path",
        help="where TF Serving mounts the repository, for --models-config: this model's entry gets "
        "base_path BASE_PATH/NAME, an existing entry's is updated (default: /models for a new "
        "entry; an existing entry keeps its base_path)",
    )
    export.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    export.set_defaults(handler=run_export)

    card = commands.add_parser(
        "card",
        help="print the model card of an exported version (MODEL_CARD.md, or --json)",
        description="PATH: a version directory (export/NAME/VERSION), a model directory (its latest version) or "
        "a model_card.json. Exit 2 when there is no card there.",
    )
    card.add_argument("path", help="e.g. export/lenet5 or export/lenet5/1")
    card.add_argument("--json", action="store_true", help="print model_card.json instead of the Markdown")
    card.set_defaults(handler=run_card)


def run_export(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from kerasdrop.exporting import ExportRefusedError, export
    from kerasdrop.verification import UnusableInputError

    try:
        result = export(
            args.model,
            name=args.name,
            repo=args.repo,
            version=args.version,
            formats=args.formats,
            mc_samples=args.mc_samples,
            models_config=args.models_config,
            base_path=args.base_path,
            image_bytes=args.image_bytes,
            int8=args.int8,
            int8_max_drop=args.int8_max_drop,
            int8_limits={
                field: getattr(args, f"int8_{field}")
                for field in ("max_probability_error", "max_nll_increase", "max_ece_increase")
                if getattr(args, f"int8_{field}") is not None
            },
        )
    except UnusableInputError as error:
        print(f"kerasdrop export: unusable input: {error}", file=sys.stderr)
        return 2
    except ExportRefusedError as refused:
        print_report(refused.report, args.json)
        print(f"kerasdrop export: refused: {refused}", file=sys.stderr)
        for finding in refused.report.errors:
            print(
                f"  - [{finding.check}] {finding.location}: {finding.message}. To fix: {finding.action}",
                file=sys.stderr,
            )
        return 1
    print_report(result.report, args.json)
    if not args.json:
        print(
            f"published {result.path}/ (version {result.version} of {result.name!r}); "
            f"models config: {result.models_config}"
        )
        interface = result.interface
        signatures = f"serving_default: {interface.describe()}"
        if args.image_bytes:
            signatures += (
                f"; serving_bytes: {interface.input_names[0]}_bytes (encoded JPEG/PNG) -> "
                f"{', '.join(interface.published_outputs)}"
            )
        if args.mc_samples:
            signatures += (
                f"; mc_dropout: {', '.join(interface.input_names)} -> mean, stddev over "
                f"{args.mc_samples} passes"
            )
        print(f"signatures {signatures}")
        for name, figures in result.formats.items():
            difference = (
                f"largest difference from Keras {figures['max_difference_vs_keras']:.2g} on "
                f"{figures['probe_rows']} probe rows"
                if "max_difference_vs_keras" in figures
                else "not compared with Keras"
            )
            print(
                f"format {name}: {', '.join(figures['files'])} ({figures['bytes']:,} bytes), "
                f"re-verified in {figures['runtime']}, {difference}, "
                f"written in {figures['export_seconds']:.2f} s"
            )
    if result.int8 is not None:
        from kerasdrop.exporting.int8 import describe

        print("\n".join(describe(result.int8)), file=sys.stdout if not args.json else sys.stderr)
    return 0


def run_card(args: argparse.Namespace) -> int:
    import json

    from kerasdrop.exporting.model_card import load_model_card, render_markdown

    card = load_model_card(args.path)
    print(
        json.dumps(card, indent=2) if args.json else render_markdown(card), end="" if not args.json else "\n"
    )
    return 0
