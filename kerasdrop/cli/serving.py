"""`kerasdrop serve`: TF Serving's REST and gRPC APIs over a model repository."""

from __future__ import annotations

import argparse
import pathlib

from kerasdrop.cli._options import UsageError, quiet_tensorflow


def register(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve a model repository over TF Serving's REST and gRPC APIs",
        description="TF Serving's protocol over the repository `kerasdrop export` writes. Defaults as TF Serving's.",
    )
    serve.add_argument("--repo", default="export", help="model repository (default: export)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (default: 8501)")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default: 8500)")
    serve.add_argument("--backend", choices=("tf", "onnx"), default="tf",
                       help="tf: SavedModel signatures; onnx: model.onnx in ONNX Runtime (default: tf)")
    serve.add_argument("--version-policy", default="latest", help="latest | all | specific:1,2 (default: latest)")
    serve.add_argument("--poll-seconds", type=float, default=2.0,
                       help="how often to look for new versions; 0 turns polling off (default: 2)")
    serve.add_argument("--models-config", help="ModelServerConfig file for version labels (default: none)")
    serve.add_argument("--enable-batching", action="store_true", help="server-side dynamic batching (default: off)")
    serve.add_argument("--max-batch-size", type=int, default=64, help="rows per batch (default: 64)")
    serve.add_argument("--batch-timeout-micros", type=int, default=1000,
                       help="how long a request waits for others (default: 1000)")
    serve.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024,
                       help="largest REST request body (default: 64 MiB)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    import logging

    from kerasdrop.serving.server import ServeConfig, Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for flag in ("max_batch_size", "batch_timeout_micros", "max_body_bytes"):
        if getattr(args, flag) < (0 if flag == "batch_timeout_micros" else 1):
            raise UsageError(f"Invalid value received for --{flag.replace('_', '-')}. Expected a positive integer. "
                             f"Received: {getattr(args, flag)}")
    config = ServeConfig(repo=args.repo, host=args.host, rest_port=args.rest_port, grpc_port=args.grpc_port,
                         backend=args.backend, version_policy=args.version_policy, poll_seconds=args.poll_seconds,
                         enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
                         batch_timeout_micros=args.batch_timeout_micros, models_config=args.models_config,
                         max_body_bytes=args.max_body_bytes)
    if not pathlib.Path(args.repo).is_dir():
        raise UsageError(f"Model repository {args.repo} does not exist. Export a model first: "
                         "kerasdrop export MODEL.keras --name NAME")
    server = Server(config).start()
    loaded = server.manager.loaded_versions()
    print(f"kerasdrop serve: REST http://{args.host}:{server.rest_port}  gRPC {args.host}:{server.grpc_port}  "
          f"backend {args.backend}  models {loaded or 'none yet (polling)'}", flush=True)
    server.serve_forever()
    return 0
