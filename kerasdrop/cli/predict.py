"""`kerasdrop predict`: send images to a TF Serving server and print each one's outputs."""

from __future__ import annotations

import argparse
import sys

from kerasdrop.cli._options import UsageError, float_list, quiet_tensorflow

# The signature `kerasdrop export --image-bytes` adds (kerasdrop/exporting/image_bytes.py): encoded images in.
BYTES_SIGNATURE = "serving_bytes"


def register(commands) -> None:
    predict = commands.add_parser(
        "predict", help="send images to a TF Serving server; print class and probabilities"
    )
    predict.add_argument(
        "files", nargs="+", help="PNG/JPEG images (resized to the model input) or .npy arrays"
    )
    predict.add_argument(
        "--url",
        default="http://127.0.0.1:8501",
        help="http://HOST:PORT (REST) or grpc://HOST:PORT; https:// and grpcs:// over TLS "
        "(default: http://127.0.0.1:8501)",
    )
    predict.add_argument("--model", required=True, help="model name on the server")
    predict.add_argument(
        "--version",
        type=int,
        help="model version: its signatures, input range and class names are used (default: the "
        "highest version the server reports available)",
    )
    predict.add_argument(
        "--repo",
        default="export",
        help="the model repository the model was exported to, where predict reads the version's "
        "input range (to scale image files into) and class names (default: export)",
    )
    predict.add_argument(
        "--input-range",
        type=float_list("--input-range"),
        metavar="LOW,HIGH",
        help="the model's input range, instead of the one its export recorded: PNG/JPEG pixels "
        "0..255 are scaled into it; 0,255 sends them as they are (default: the recorded one)",
    )
    predict.add_argument(
        "--signature",
        help="signature to call, e.g. mc_dropout; its outputs are printed (default: serving_bytes, "
        "sent the files' bytes, when the model has it and every file is a PNG/JPEG; else "
        "serving_default, sent decoded pixels)",
    )
    tls = predict.add_argument_group(
        "TLS", "for a server with --ssl-config-file: use an https:// or grpcs:// --url"
    )
    tls.add_argument(
        "--ca-cert", metavar="PEM", help="CA certificate that signed the server's (default: the system's CAs)"
    )
    tls.add_argument(
        "--client-cert",
        metavar="PEM",
        help="client certificate for mutual TLS, with --client-key (default: none)",
    )
    tls.add_argument(
        "--client-key", metavar="PEM", help="the client certificate's private key (default: none)"
    )
    predict.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from kerasdrop.cli.client import ServingClientError

    client = _client(args)
    if client.protocol == "grpc":
        quiet_tensorflow()  # the gRPC path builds TensorProtos with TensorFlow
    try:
        # One version for every call, so its signatures, its units and its answers belong together.
        version = args.version if args.version is not None else client.latest_version(args.model)
        signatures = client.signature_inputs(args.model, version)
        pixel_range, class_names = _version_units(args, version)
        signature = args.signature or _default_signature(signatures, args.files)
        if signature == BYTES_SIGNATURE and signature in signatures:
            outputs, labels = _predict_bytes(client, args, signatures[signature], version), list(args.files)
        else:
            input_name, row_shape = _signature_input(signatures, signature)
            if pixel_range is None and any(not str(path).endswith(".npy") for path in args.files):
                raise UsageError(_unknown_range_hint(args, version))
            images, labels = _images_with_labels(args.files, row_shape, pixel_range)
            outputs = client.predict(
                args.model, images, signature=signature, version=version, input_name=input_name
            )
    except ServingClientError as error:
        print(f"kerasdrop predict: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"kerasdrop predict: cannot reach {args.url}: {error}{_tls_hint(client, args, error)}",
            file=sys.stderr,
        )
        return 1
    for row, label in enumerate(labels):
        row_outputs = {name: values[row] for name, values in outputs.items()}
        print(f"{label}: {_describe_outputs(row_outputs, class_names)}")
    return 0


def _version_directory(args, version):
    import pathlib

    return pathlib.Path(args.repo) / args.model / str(version)


def _version_units(args, version) -> tuple:
    """`(pixel range or None, class names or None)`: --input-range, else what export recorded in the version."""
    from kerasdrop.exporting.model_card import version_units

    pixel_range, class_names = (
        version_units(_version_directory(args, version)) if version is not None else (None, None)
    )
    if args.input_range is not None:
        if len(args.input_range) != 2 or not args.input_range[0] < args.input_range[1]:
            raise UsageError(
                f"Invalid value received for --input-range. Expected LOW,HIGH with LOW < HIGH, e.g. "
                f"0,16. Received: {','.join(f'{value:g}' for value in args.input_range)}"
            )
        pixel_range = tuple(args.input_range)
    return pixel_range, class_names


def _unknown_range_hint(args, version) -> str:
    from kerasdrop.layout import MODEL_CARD_JSON

    card = _version_directory(args, version) / MODEL_CARD_JSON
    return (
        f"the input range of {args.model!r} version {version} is unknown ({card} is missing or records none), "
        f"so predict cannot scale the image files' 0..255 pixels into the model's units. Pass --repo with the "
        f"repository it was exported to, --input-range LOW,HIGH (e.g. 0,16 for the digits models; 0,255 sends "
        f"the pixels as they are), or .npy arrays already in the model's units"
    )


def _client(args):
    """The client for --url with the TLS files; a missing file or a flag without https/grpcs is exit 2."""
    import pathlib

    from kerasdrop.cli.client import ServingClient

    for flag in ("ca_cert", "client_cert", "client_key"):
        path = getattr(args, flag)
        if path is not None and not pathlib.Path(path).is_file():
            raise UsageError(
                f"Invalid value received for --{flag.replace('_', '-')}. Expected a PEM file. "
                f"Received: {path} (no such file)"
            )
    try:
        return ServingClient(
            args.url, ca_cert=args.ca_cert, client_cert=args.client_cert, client_key=args.client_key
        )
    except (
        OSError
    ) as error:  # ssl.SSLError (an OSError) for a file that is not PEM, or a key not the certificate's
        raise UsageError(
            f"Invalid value received for --ca-cert/--client-cert/--client-key. Expected PEM files of "
            f"a certificate and its key. Received: {error}"
        ) from None


def _tls_hint(client, args, error: OSError) -> str:
    """Why a server may have hung up on the client: TLS spoken to plain HTTP, or mutual TLS without a
    client certificate (TLS 1.3 servers refuse that after the handshake, so it reads as a hang-up)."""
    import http.client

    if not isinstance(error, http.client.RemoteDisconnected):
        return ""
    if not client.tls:
        return " (if the server has --ssl-config-file: an https:// URL)"
    if args.client_cert is None:
        return " (if the server verifies clients: --client-cert and --client-key)"
    return ""


def _default_signature(signatures: dict, files) -> str:
    """`serving_bytes` (the files' own bytes, decoded by the model) when it can take every file."""
    images = all(not str(path).endswith(".npy") for path in files)
    return BYTES_SIGNATURE if BYTES_SIGNATURE in signatures and images else "serving_default"


def _predict_bytes(client, args, inputs: dict, version) -> dict:
    import pathlib

    if len(inputs) != 1:
        raise UsageError(
            f"Signature {BYTES_SIGNATURE!r} takes {', '.join(sorted(inputs))}; kerasdrop predict sends "
            "the files' bytes to a signature with one string input"
        )
    encoded = []
    for path in map(pathlib.Path, args.files):
        if not path.is_file():
            raise UsageError(f"Image file not found: {path}")
        encoded.append(path.read_bytes())
    return client.predict_bytes(
        args.model, encoded, input_name=next(iter(inputs)), signature=BYTES_SIGNATURE, version=version
    )


def _images_with_labels(files, row_shape, pixel_range=None):
    """One batch of every image (scaled into `pixel_range`), and one label per row: `file` for an image,
    `file[row]` for N-row .npy files."""
    import numpy as np

    from kerasdrop.cli.client import load_images

    batches, labels = [], []
    for path in files:
        batch = load_images([path], row_shape, pixel_range)
        batches.append(batch)
        is_stack = str(path).endswith(".npy") and np.load(path, mmap_mode="r").ndim == len(row_shape) + 1
        labels += [f"{path}[{row}]" for row in range(len(batch))] if is_stack else [path]
    return np.concatenate(batches), labels


def _describe_outputs(outputs: dict, class_names=None) -> str:
    """`class 7 (0.9999)  probabilities ...` for a classifier's output, `class 2 (red) 0.9766` where the
    version names its classes otherwise than by their ids; every other output by its name."""
    import numpy as np

    parts = []
    for name in sorted(outputs, key=lambda name: (name != "probabilities", name)):
        values = np.atleast_1d(np.asarray(outputs[name]))
        if name == "class_ids" and "probabilities" in outputs:
            continue  # shown as the class of the probabilities
        if name in ("probabilities", "mean") and values.ndim == 1 and values.size > 1:
            top = int(np.argmax(values))
            named = class_names is not None and top < len(class_names) and class_names[top] != str(top)
            parts.append(
                f"class {top} ({class_names[top]}) {values[top]:.4f}"
                if named
                else f"class {top} ({values[top]:.4f})"
            )
        shown = " ".join(
            f"{value:.3f}" if np.issubdtype(values.dtype, np.floating) else str(value)
            for value in values.ravel()
        )
        parts.append(f"{name} {shown}")
    return "  ".join(parts)


def _signature_input(signatures: dict, signature: str) -> tuple[str, tuple]:
    """`(input name, per-row shape)` of the signature's one input, whatever its name."""
    available = sorted(name for name in signatures if not name.startswith("__"))
    if signature not in signatures:
        raise UsageError(
            f"Invalid value received for --signature. Expected one of the model's signatures: "
            f"{', '.join(available)}. Received: {signature!r}"
        )
    inputs = signatures[signature]
    if len(inputs) != 1:
        raise UsageError(
            f"Signature {signature!r} takes {', '.join(sorted(inputs)) or 'no inputs'}; kerasdrop "
            "predict sends one batch (images or .npy rows) to a signature with exactly one input"
        )
    ((name, shape),) = inputs.items()
    return name, tuple(shape[1:])
