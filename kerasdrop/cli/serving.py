"""`kerasdrop serve`: TF Serving's REST and gRPC APIs and the Open Inference Protocol (v2) over a model repository."""

from __future__ import annotations

import argparse
import os
import pathlib

from kerasdrop.cli._options import UsageError, quiet_tensorflow
from kerasdrop.layout import (
    INT8_ONNX_FILE,
    MODELS_CONFIG_FILE,
    ONNX_FILE,
    OPENVINO_XML_FILE,
    VERIFICATION_FILE,
)
from kerasdrop.serving import limits
from kerasdrop.serving.models.backends import BACKEND_CHOICES, DEFAULT_BACKEND

# bench/serve_latency.py measured 2 workers at 1.9-2.0x one worker's REST req/s on 2 cores; more
# processes than cores only add memory (a copy of every model each) and context switches.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)

# What one request may claim (docs/serving-limits.md): flag, type, default, whether 0 turns it
# off (for a server behind a proxy that enforces its own; the benchmark's reference), help.
REQUEST_LIMITS = [
    (
        "--max-body-bytes",
        int,
        limits.DEFAULT_MAX_BODY_BYTES,
        False,
        "largest REST request body, enforced while reading",
    ),
    (
        "--max-inflight",
        int,
        limits.DEFAULT_MAX_INFLIGHT,
        False,
        "requests running or queued per model, over all workers; beyond it 429 / RESOURCE_EXHAUSTED",
    ),
    ("--max-elements", int, limits.DEFAULT_MAX_ELEMENTS, False, "elements per input tensor of one request"),
    (
        "--max-image-pixels",
        int,
        limits.DEFAULT_MAX_IMAGE_PIXELS,
        True,
        "decoded pixels of the encoded images (JPEG, PNG, GIF, BMP) in one request, read from their headers before "
        "decoding (4096x4096)",
    ),
    (
        "--max-concurrent-requests",
        int,
        limits.DEFAULT_MAX_CONCURRENT_REQUESTS,
        True,
        "REST requests and gRPC calls being answered in one worker; beyond it 429 / RESOURCE_EXHAUSTED before the "
        "request queues for a thread",
    ),
    (
        "--max-header-bytes",
        int,
        limits.DEFAULT_MAX_HEADER_BYTES,
        True,
        "a REST request's line and headers; beyond it 431",
    ),
    (
        "--max-header-count",
        int,
        limits.DEFAULT_MAX_HEADER_COUNT,
        True,
        "header fields of a REST request; beyond it 431",
    ),
    (
        "--header-timeout-seconds",
        float,
        limits.DEFAULT_HEADER_TIMEOUT_SECONDS,
        True,
        "time from a REST request's first byte to the end of its headers; then 408 and the connection closes",
    ),
    (
        "--body-timeout-seconds",
        float,
        limits.DEFAULT_BODY_TIMEOUT_SECONDS,
        True,
        "the longest wait for the next piece of a REST request's body; then 408 and the connection closes",
    ),
    (
        "--keep-alive-seconds",
        float,
        limits.DEFAULT_KEEP_ALIVE_SECONDS,
        False,
        "an idle REST connection (kept alive, or new and silent) is closed after this",
    ),
    (
        "--max-concurrent-streams",
        int,
        limits.DEFAULT_MAX_CONCURRENT_STREAMS,
        True,
        "HTTP/2 streams one gRPC connection may have open, counted until the server has freed them: a client's calls "
        "beyond it wait in the client; streams opened beyond it anyway (a rapid-reset attack) are refused with "
        "REFUSED_STREAM",
    ),
    (
        "--max-connection-age-seconds",
        float,
        limits.DEFAULT_MAX_CONNECTION_AGE_SECONDS,
        True,
        "a gRPC connection this old (give or take a tenth) is closed with GOAWAY, its calls in "
        "flight given --drain-seconds; "
        "clients reconnect",
    ),
    (
        "--request-timeout",
        float,
        30.0,
        False,
        "seconds a request may wait for its batch (--enable-batching) before 504 / DEADLINE_EXCEEDED",
    ),
]


def _gflags_bool(text: str) -> bool:
    """A boolean as tensorflow_model_server's flags take it: `--enable_batching`, `=true`, `=false`."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"Expected true or false. Received: {text!r}")
    return value in ("true", "1")


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _add_limit_options(serve) -> None:
    limits = serve.add_argument_group(
        "request limits",
        "what one request may claim, each refused before it is spent with an error naming the flag",
    )
    for flag, kind, default, zero_turns_off, text in REQUEST_LIMITS:
        limits.add_argument(
            flag,
            type=kind,
            default=default,
            help=f"{text}{'; 0 turns it off' if zero_turns_off else ''} (default: "
            f"{default if kind is int else format(default, 'g')})",
        )


def _check_positive(args: argparse.Namespace) -> None:
    others = [
        ("--max-batch-size", False),
        ("--batch-timeout-micros", True),
        ("--cheap-model-micros", True),
        ("--drain-seconds", True),
        ("--workers", False),
    ]
    others += [(flag, False) for flag, *_ in REQUEST_LOG_LIMITS]
    for flag, zero_allowed in [(flag, zero) for flag, _, _, zero, _ in REQUEST_LIMITS] + others:
        value = getattr(args, _dest(flag))
        if value < (0 if zero_allowed else 1):
            raise UsageError(
                f"Invalid value received for {flag}. Expected {'0 or ' if zero_allowed else ''}a "
                f"positive number. Received: {value}"
            )


def register(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model repository over TF Serving's REST and gRPC APIs and the Open Inference Protocol",
        description="TF Serving's protocol and the Open Inference Protocol (v2) over the repository `kerasdrop "
        "export` writes. Defaults as TF Serving's.",
    )
    # Each flag that tensorflow_model_server has under another name also takes that name (its second
    # spelling here), so a TF Serving command line runs unchanged: --port, --rest_api_port, --model_name,
    # --model_base_path, --model_config_file, --file_system_poll_wait_seconds, --enable_batching,
    # --ssl_config_file.
    serve.add_argument(
        "--repo",
        help="model repository: every model directory in it is served (default: export, "
        "unless --models-config names the models)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    serve.add_argument(
        "--model-name",
        "--model_name",
        help="with --model-base-path: serve this one model under this name, as tensorflow_model_server "
        "does (default: default)",
    )
    serve.add_argument(
        "--model-base-path",
        "--model_base_path",
        metavar="DIR",
        help="serve the one model whose version directories are in DIR (default: none, serve --repo)",
    )
    serve.add_argument(
        "--rest-port", "--rest_api_port", type=int, default=8501, help="REST port (default: 8501)"
    )
    serve.add_argument("--grpc-port", "--port", type=int, default=8500, help="gRPC port (default: 8500)")
    serve.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=DEFAULT_BACKEND,
        help=f"auto: {ONNX_FILE} where {VERIFICATION_FILE} proves its parity with the "
        "SavedModel and the model has no other signature, the SavedModel otherwise (the "
        "start line says which each model got and why); tf: SavedModel signatures; onnx: "
        f"{ONNX_FILE} in ONNX Runtime; "
        f"onnx-int8: {INT8_ONNX_FILE} (kerasdrop export --int8) in ONNX Runtime; openvino: "
        f"{OPENVINO_XML_FILE}, else {ONNX_FILE}, in OpenVINO on the CPU in float32 "
        f"(docs/int8-and-backends.md) (default: {DEFAULT_BACKEND})",
    )
    serve.add_argument(
        "--version-policy",
        default="latest",
        help=f"latest | latest:N | all | specific:1,2; a {MODELS_CONFIG_FILE} policy wins (default: latest)",
    )
    serve.add_argument(
        "--poll-seconds",
        "--file_system_poll_wait_seconds",
        type=float,
        default=2.0,
        help="how often to look for new versions; 0 turns polling off (default: 2)",
    )
    serve.add_argument(
        "--models-config",
        "--model_config_file",
        help="ModelServerConfig file (TF Serving's --model_config_file): exactly the models it "
        "lists are served, by their names, from their base_paths (absolute, as TF Serving "
        "requires), with their version policies and labels; re-read at every poll "
        "(default: none, serve --repo)",
    )
    serve.add_argument(
        "--enable-batching",
        "--enable_batching",
        nargs="?",
        const=True,
        default=False,
        type=_gflags_bool,
        metavar="true|false",
        help="server-side dynamic batching (default: off)",
    )
    serve.add_argument("--max-batch-size", type=int, default=64, help="rows per batch (default: 64)")
    serve.add_argument(
        "--batch-timeout-micros",
        type=int,
        default=1000,
        help="how long a request waits for others (default: 1000)",
    )
    serve.add_argument(
        "--cheap-model-micros",
        type=int,
        default=1000,
        help="a model that runs one row in less than this (measured at load) is answered on the event "
        "loop, never batched: a thread hop costs it more than the work; 0 sends every model "
        "through threads and batching (default: 1000)",
    )
    _add_limit_options(serve)
    serve.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="processes serving both protocols on the same ports, with one --max-inflight limit "
        "and one metrics page; one that dies is replaced, and 5 deaths within 60 s stop the "
        f"server, exit 2 (default: min(2, CPU cores) = {DEFAULT_WORKERS}; at most 64)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=10.0,
        help="on SIGTERM/SIGINT, time for in-flight requests to finish (default: 10)",
    )
    serve.add_argument(
        "--require-verification",
        action="store_true",
        help=f"serve only versions whose {VERIFICATION_FILE} reports a pass (default: off, so "
        "any TF Serving repository serves)",
    )
    _add_tls_options(serve)
    _add_request_log_options(serve)
    serve.set_defaults(handler=run_serve)


# models.config's logging_config (docs/promotion.md): flag, default, help.
REQUEST_LOG_LIMITS = [
    (
        "--request-log-queue",
        limits.DEFAULT_REQUEST_LOG_QUEUE,
        "sampled requests of one model waiting to be written; beyond it a sample is dropped and counted in "
        "/metrics",
    ),
    (
        "--request-log-file-bytes",
        limits.DEFAULT_REQUEST_LOG_FILE_BYTES,
        "a request log file is rotated at this size",
    ),
    (
        "--request-log-total-bytes",
        limits.DEFAULT_REQUEST_LOG_TOTAL_BYTES,
        "all request log files of one filename_prefix; beyond it the oldest are deleted",
    ),
]


def _add_request_log_options(serve) -> None:
    group = serve.add_argument_group(
        "request logs",
        "sampled requests written as PredictionLog TFRecords "
        "where a model's logging_config in --models-config asks",
    )
    for flag, default, text in REQUEST_LOG_LIMITS:
        group.add_argument(flag, type=int, default=default, help=f"{text} (default: {default})")


def _add_tls_options(serve) -> None:
    tls = serve.add_argument_group(
        "TLS",
        "TF Serving's SSLConfig text proto (ssl_config.proto): server_key, "
        "server_cert (PEM text inline), custom_ca, client_verify (mutual TLS)",
    )
    tls.add_argument(
        "--ssl-config-file",
        "--ssl_config_file",
        metavar="FILE",
        help="secure gRPC and REST with this SSLConfig, as TF Serving's --ssl_config_file secures gRPC "
        "(default: none, plaintext)",
    )
    tls.add_argument(
        "--rest-ssl-config-file",
        metavar="FILE",
        help="REST's own SSLConfig, e.g. a certificate browsers trust while gRPC keeps an internal CA "
        "(default: --ssl-config-file's)",
    )
    tls.add_argument(
        "--plain-rest",
        action="store_true",
        help="keep REST plaintext while gRPC has TLS, as real TF Serving does (e.g. behind a proxy that "
        "terminates TLS) (default: off)",
    )


def _models_to_serve(args: argparse.Namespace) -> tuple[str | None, dict | None]:
    """`(repo, {name: model directory})` from the one source given: --repo, --models-config or --model-base-path."""
    from kerasdrop.serving.models.repository import not_a_repository

    given = [
        f"{flag} {value}"
        for flag, value in (
            ("--repo", args.repo),
            ("--models-config", args.models_config),
            ("--model-base-path", args.model_base_path),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise UsageError(
            f"{' and '.join(given)} name different sets of models; give one: --models-config serves "
            "exactly the models the file lists, from their base_paths (as TF Serving does with "
            "--model_config_file), --model-base-path one model, --repo every model directory of "
            "the repository"
        )
    if args.model_name is not None and args.model_base_path is None:
        raise UsageError(
            f"--model_name {args.model_name} needs --model_base_path: the directory holding the model's "
            "version directories (as tensorflow_model_server requires)"
        )
    if args.model_base_path is not None:
        base_path = pathlib.Path(args.model_base_path)
        if not base_path.is_dir():
            raise UsageError(
                f"Invalid value received for --model-base-path. Expected a directory of version "
                f"directories (e.g. export/lenet5). Received: {base_path} (no such directory)"
            )
        return None, {args.model_name or "default": base_path.absolute()}
    if args.models_config is not None:
        return None, None
    repo = args.repo if args.repo is not None else "export"
    if not pathlib.Path(repo).is_dir():
        raise UsageError(
            f"Model repository {repo} does not exist. Export a model first: "
            "kerasdrop export MODEL.keras --name NAME"
        )
    hint = not_a_repository(repo)
    if hint is not None:
        raise UsageError(hint)
    return repo, None


def run_serve(args: argparse.Namespace) -> int:
    import logging

    from kerasdrop.serving.process.ports import PortInUseError, check_ports_free
    from kerasdrop.serving.process.shared_counters import MAX_WORKERS

    _check_positive(args)
    if args.workers > MAX_WORKERS:  # one column each in the shared admission table
        raise UsageError(
            f"Invalid value received for --workers. Expected a number from 1 to {MAX_WORKERS}. "
            f"Received: {args.workers}"
        )
    repo, models = _models_to_serve(args)
    try:  # before TensorFlow's import: a port in use is reported in well under a second, both ports named
        check_ports_free(
            args.host, [(args.rest_port, "REST", "--rest-port"), (args.grpc_port, "gRPC", "--grpc-port")]
        )
    except PortInUseError as error:
        raise UsageError(str(error)) from None
    quiet_tensorflow()
    from kerasdrop.serving.process.server import ServeConfig, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = ServeConfig(
        repo=repo,
        models=models,
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        backend=args.backend,
        version_policy=args.version_policy,
        poll_seconds=args.poll_seconds,
        enable_batching=args.enable_batching,
        max_batch_size=args.max_batch_size,
        batch_timeout_micros=args.batch_timeout_micros,
        models_config=_absolute(args.models_config),
        cheap_model_micros=args.cheap_model_micros,
        drain_seconds=args.drain_seconds,
        workers=args.workers,
        require_verification=args.require_verification,
        ssl_config_file=_absolute(args.ssl_config_file),
        rest_ssl_config_file=_absolute(args.rest_ssl_config_file),
        plain_rest=args.plain_rest,
        **{_dest(flag): getattr(args, _dest(flag)) for flag, *_ in REQUEST_LIMITS + REQUEST_LOG_LIMITS},
    )
    from kerasdrop.serving.process.tls import check_config, describe

    tls = check_config(config)  # a bad certificate is exit 2 before anything listens
    try:
        server = Server(config).handle_signals().start()
    except PortInUseError as error:
        raise UsageError(str(error)) from None
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address, as URLs write it
    rest = f"REST {'https' if tls['rest'] else 'http'}://{host}:{server.rest_port}"
    grpc = f"gRPC {host}:{server.grpc_port}"
    if tls["rest"] or tls["grpc"]:  # the plaintext line stays as it was; a secured one names each port's mode
        rest, grpc = f"{rest} ({describe(tls['rest'])})", f"{grpc} ({describe(tls['grpc'])})"
    print(
        f"kerasdrop serve: {rest}  {grpc}  "
        f"models {server.manager.loaded_versions() or 'none yet (polling)'}  "
        f"{_backends_line(server, args.backend)}",
        flush=True,
    )
    server.serve_forever()
    return 0


def _backends_line(server, requested: str) -> str:
    """Which backend serves each model and why (`--backend auto` decides per version)."""
    chosen = server.manager.backends_chosen()
    if not chosen:
        return f"backend {requested}"
    return "backends " + ", ".join(f"{name}: {backend}" for name, backend in chosen.items())


def _absolute(path: str | None) -> str | None:
    """A path the worker processes (started elsewhere in time, same directory) read the same way."""
    return None if path is None else str(pathlib.Path(path).absolute())
