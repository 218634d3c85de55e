"""`kerasdrop verify`: prove inference mode for a .keras file, a SavedModel, an ONNX, LiteRT or OpenVINO
file."""

from __future__ import annotations

import argparse
import sys

from kerasdrop.cli._options import float_list, print_report, quiet_tensorflow


def register(commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="prove inference is deterministic and batch independent (.keras, SavedModel dir, "
        ".onnx, .tflite, OpenVINO .xml)",
        description="Checks structure, graph ops, repeatability, batch independence and runtime parity. "
        "Exit 0: clean (proven by running it); 1: findings (errors); 2: unusable input (missing, "
        "corrupt, not loadable); 3: graph only: no error found, but no runtime could execute the "
        "artefact (e.g. an ONNX opset or op ONNX Runtime lacks, or the LiteRT/OpenVINO runtime "
        "is not installed: the report names the package), so only its graph was judged.",
    )
    verify.add_argument(
        "path",
        help="a .keras file, a SavedModel directory, an .onnx file, a .tflite file "
        "or an OpenVINO IR .xml (its .bin beside it)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    verify.add_argument(
        "--probe-range",
        type=float_list("--probe-range"),
        metavar="LOW,HIGH",
        help="range of the probe inputs (default: the range the model declares; else several "
        "magnitudes: 0..1, 0..255, standard normal, -1e4..1e4)",
    )
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from kerasdrop.verification import UnusableInputError, verify

    try:
        report = verify(args.path, probe_range=tuple(args.probe_range) if args.probe_range else None)
    except UnusableInputError as error:
        print(f"kerasdrop verify: unusable input: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # never a traceback: anything the verifier could not handle is unusable input
        from kerasdrop.verification.numerical import one_line

        print(f"kerasdrop verify: could not verify {args.path}: {one_line(error)}", file=sys.stderr)
        return 2
    print_report(report, args.json)
    return report.exit_code
