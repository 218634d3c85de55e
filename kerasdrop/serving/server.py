"""`kerasdrop serve`: the model manager behind TF Serving's REST and gRPC APIs, with a clean shutdown."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import signal
import threading

from kerasdrop.serving.grpc_api import make_grpc_server
from kerasdrop.serving.manager import ModelManager, VersionPolicy
from kerasdrop.serving.rest import DEFAULT_MAX_BODY_BYTES, RestServer

log = logging.getLogger("kerasdrop.serve")


@dataclasses.dataclass
class ServeConfig:
    repo: str = "export"
    host: str = "127.0.0.1"  # loopback unless asked: a model server is not for the open network by default
    rest_port: int = 8501  # TF Serving's defaults
    grpc_port: int = 8500
    backend: str = "tf"
    version_policy: str = "latest"
    poll_seconds: float = 2.0
    enable_batching: bool = False  # off by default, as in TF Serving
    max_batch_size: int = 64
    batch_timeout_micros: int = 1000
    models_config: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    models: dict | None = None  # {name: model_dir} instead of scanning `repo`


class Server:
    """Runs REST and gRPC over one ModelManager. `start()` returns once both listen."""

    def __init__(self, config: ServeConfig):
        self.config = config
        batching = ({"max_batch_size": config.max_batch_size, "batch_timeout_micros": config.batch_timeout_micros}
                    if config.enable_batching else None)
        self.manager = ModelManager(
            pathlib.Path(config.repo) if config.models is None else None, backend=config.backend,
            policy=VersionPolicy.parse(config.version_policy), models=config.models,
            models_config=config.models_config, batching=batching)
        self.rest = None
        self.grpc = None
        self.rest_port = None
        self.grpc_port = None
        self._rest_thread = None

    def start(self) -> "Server":
        self.manager.sync()
        self.rest = RestServer((self.config.host, self.config.rest_port), self.manager, self.config.max_body_bytes)
        self.rest_port = self.rest.server_address[1]
        self._rest_thread = threading.Thread(target=self.rest.serve_forever, name="kerasdrop-rest", daemon=True)
        self._rest_thread.start()
        self.grpc, self.grpc_port = make_grpc_server(self.manager, f"{self.config.host}:{self.config.grpc_port}")
        self.grpc.start()
        if self.config.poll_seconds > 0:
            self.manager.start_polling(self.config.poll_seconds)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets in-flight ones finish (up to `grace` seconds), unloads."""
        if self.grpc:
            self.grpc.stop(grace).wait()
        if self.rest:
            self.rest.shutdown()
            self.rest.server_close()
        self.manager.stop()

    def serve_forever(self) -> None:
        stopped = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopped.set())
        stopped.wait()
        log.info("shutting down")
        self.stop()
