"""`kerasdrop serve`: TF Serving's REST and gRPC APIs and the Open Inference Protocol (v2) over a model repository."""

from __future__ import annotations

import argparse
import os
import pathlib

from kerasdrop.cli._options import UsageError, quiet_tensorflow

# bench/serve_latency.py measured 2 workers at 1.9-2.0x one worker's REST req/s on 2 cores; more
# processes than cores only add memory (a copy of every model each) and context switches.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


def register(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve a model repository over TF Serving's REST and gRPC APIs and the Open Inference Protocol",
        description="TF Serving's protocol and the Open Inference Protocol (v2) over the repository `kerasdrop "
                    "export` writes. Defaults as TF Serving's.",
    )
    serve.add_argument("--repo", default="export", help="model repository (default: export)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (default: 8501)")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default: 8500)")
    serve.add_argument("--backend", choices=("tf", "onnx", "onnx-int8"), default="tf",
                       help="tf: SavedModel signatures; onnx: model.onnx in ONNX Runtime; onnx-int8: model.int8.onnx "
                            "(kerasdrop export --int8) in ONNX Runtime (default: tf)")
    serve.add_argument("--version-policy", default="latest",
                       help="latest | latest:N | all | specific:1,2; a models.config policy wins (default: latest)")
    serve.add_argument("--poll-seconds", type=float, default=2.0,
                       help="how often to look for new versions; 0 turns polling off (default: 2)")
    serve.add_argument("--models-config", help="ModelServerConfig file for version labels (default: none)")
    serve.add_argument("--enable-batching", action="store_true", help="server-side dynamic batching (default: off)")
    serve.add_argument("--max-batch-size", type=int, default=64, help="rows per batch (default: 64)")
    serve.add_argument("--batch-timeout-micros", type=int, default=1000,
                       help="how long a request waits for others (default: 1000)")
    serve.add_argument("--cheap-model-micros", type=int, default=1000,
                       help="a model that runs one row in less than this (measured at load) is answered on the event "
                            "loop, never batched: a thread hop costs it more than the work; 0 sends every model "
                            "through threads and batching (default: 1000)")
    serve.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024,
                       help="largest REST request body, enforced while reading (default: 64 MiB)")
    serve.add_argument("--max-inflight", type=int, default=128,
                       help="requests running or queued per model; beyond it 429 / RESOURCE_EXHAUSTED (default: 128)")
    serve.add_argument("--max-elements", type=int, default=1 << 24,
                       help="elements per input tensor of one request (default: 16777216)")
    serve.add_argument("--request-timeout", type=float, default=30.0,
                       help="seconds before an unanswered request gets 504 / DEADLINE_EXCEEDED (default: 30)")
    serve.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                       help="processes serving both protocols on the same ports, with one --max-inflight limit "
                            "and one metrics page; one that dies is replaced, and 5 deaths within 60 s stop the "
                            f"server, exit 2 (default: min(2, CPU cores) = {DEFAULT_WORKERS}; at most 64)")
    serve.add_argument("--drain-seconds", type=float, default=10.0,
                       help="on SIGTERM/SIGINT, time for in-flight requests to finish (default: 10)")
    serve.add_argument("--require-verification", action="store_true",
                       help="serve only versions whose verification.json reports a pass (default: off, so any "
                            "TF Serving repository serves)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    import logging

    from kerasdrop.serving.process.ports import PortInUseError
    from kerasdrop.serving.process.server import ServeConfig, Server
    from kerasdrop.serving.process.shared_counters import MAX_WORKERS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for flag in ("max_batch_size", "batch_timeout_micros", "cheap_model_micros", "max_body_bytes", "max_inflight", "max_elements",
                 "request_timeout", "drain_seconds", "workers"):
        zero_allowed = flag in ("batch_timeout_micros", "cheap_model_micros", "drain_seconds")
        if getattr(args, flag) < (0 if zero_allowed else 1):
            raise UsageError(f"Invalid value received for --{flag.replace('_', '-')}. Expected "
                             f"{'0 or ' if zero_allowed else ''}a positive number. Received: {getattr(args, flag)}")
    if args.workers > MAX_WORKERS:  # one column each in the shared admission table
        raise UsageError(f"Invalid value received for --workers. Expected a number from 1 to {MAX_WORKERS}. "
                         f"Received: {args.workers}")
    config = ServeConfig(repo=args.repo, host=args.host, rest_port=args.rest_port, grpc_port=args.grpc_port,
                         backend=args.backend, version_policy=args.version_policy, poll_seconds=args.poll_seconds,
                         enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
                         batch_timeout_micros=args.batch_timeout_micros, models_config=args.models_config,
                         cheap_model_micros=args.cheap_model_micros,
                         max_body_bytes=args.max_body_bytes, max_inflight=args.max_inflight,
                         max_elements=args.max_elements, request_timeout=args.request_timeout,
                         drain_seconds=args.drain_seconds, workers=args.workers,
                         require_verification=args.require_verification)
    if not pathlib.Path(args.repo).is_dir():
        raise UsageError(f"Model repository {args.repo} does not exist. Export a model first: "
                         "kerasdrop export MODEL.keras --name NAME")
    try:
        server = Server(config).handle_signals().start()
    except PortInUseError as error:
        raise UsageError(str(error)) from None
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address, as URLs write it
    print(f"kerasdrop serve: REST http://{host}:{server.rest_port}  gRPC {host}:{server.grpc_port}  "
          f"backend {args.backend}  models {server.manager.loaded_versions() or 'none yet (polling)'}", flush=True)
    server.serve_forever()
    return 0
