"""`kerasdrop serve`: the model manager behind TF Serving's REST and gRPC APIs and the Open Inference
Protocol (v2) on the same ports, with a draining stop.

REST runs on uvicorn (httptools) in a thread of its own; gRPC on grpc.aio in another; in every worker
process, each with listening sockets of its own (ports.py); the parent replaces a worker that dies
(supervisor.py), and every process stops when one of its two threads ends. The protocols (their
REST routers and gRPC services) come from protocols/registry.py. On SIGTERM or SIGINT both stop
accepting at once, requests in flight are answered within `drain_seconds`, and the process exits 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import socket
import threading

from kerasdrop.errors import InvalidArgumentError
from kerasdrop.serving import limits
from kerasdrop.serving.models.admission import Admission
from kerasdrop.serving.models.backends import DEFAULT_BACKEND
from kerasdrop.serving.models.manager import ModelManager
from kerasdrop.serving.models.repository import VersionPolicy
from kerasdrop.serving.models.request_log import LogLimits
from kerasdrop.serving.process.grpc_server import bind_grpc_guard, make_grpc_server
from kerasdrop.serving.process.ports import claim_port, join_port
from kerasdrop.serving.process.shared_counters import MAX_WORKERS
from kerasdrop.serving.process.supervisor import (
    ServingStoppedError,
    Supervisor,
    Watchdog,
    install_crash_signals,
)

# Out of order on purpose: apart from the supervisor's imports above, so the two branches merge cleanly.
from kerasdrop.serving.process.tls import grpc_server_credentials, rest_ssl_options  # noqa: I001
from kerasdrop.serving.protocols import grpc_services, rest_routers

log = logging.getLogger("kerasdrop.serve")


@dataclasses.dataclass
class ServeConfig:
    repo: str | None = "export"  # None with `models_config`: serve exactly the models that file lists
    host: str = "127.0.0.1"  # loopback unless asked: a model server is not for the open network by default
    rest_port: int = 8501  # TF Serving's defaults
    grpc_port: int = 8500
    backend: str = DEFAULT_BACKEND  # auto: model.onnx where its parity is proven (backends.choose_backend)
    version_policy: str = "latest"
    poll_seconds: float = 2.0
    enable_batching: bool = False  # off by default, as in TF Serving
    max_batch_size: int = 64
    batch_timeout_micros: int = 1000
    cheap_model_micros: int = 1000  # a model running a row faster is answered on the event loop, unbatched
    models_config: str | None = None
    max_body_bytes: int = limits.DEFAULT_MAX_BODY_BYTES
    max_inflight: int = limits.DEFAULT_MAX_INFLIGHT  # per model, running or queued
    max_elements: int = limits.DEFAULT_MAX_ELEMENTS  # per input tensor of one request
    max_image_pixels: int = limits.DEFAULT_MAX_IMAGE_PIXELS  # decoded, over one request's encoded images
    max_concurrent_requests: int = limits.DEFAULT_MAX_CONCURRENT_REQUESTS  # per worker, REST and gRPC each
    max_header_bytes: int = limits.DEFAULT_MAX_HEADER_BYTES  # a REST request's line and headers
    max_header_count: int = limits.DEFAULT_MAX_HEADER_COUNT
    header_timeout_seconds: float = (
        limits.DEFAULT_HEADER_TIMEOUT_SECONDS
    )  # from a request's first byte to its head's end
    keep_alive_seconds: float = limits.DEFAULT_KEEP_ALIVE_SECONDS  # an idle REST connection is closed
    body_timeout_seconds: float = (
        limits.DEFAULT_BODY_TIMEOUT_SECONDS
    )  # the longest wait for the next piece of a body
    max_concurrent_streams: int = limits.DEFAULT_MAX_CONCURRENT_STREAMS  # per gRPC (HTTP/2) connection
    max_connection_age_seconds: float = limits.DEFAULT_MAX_CONNECTION_AGE_SECONDS  # then GOAWAY; 0: never
    request_timeout: float = 30.0  # a request not answered by then gets DEADLINE_EXCEEDED / 504
    drain_seconds: float = 10.0  # on SIGTERM: how long in-flight requests have to finish
    require_verification: bool = False  # off: any TF Serving repository serves; on: verified versions only
    # Request logs (models.config logging_config): a model's samples waiting for its writer, a file's
    # size before it rotates, all files of a prefix before the oldest are deleted (limits.py says why).
    request_log_queue: int = limits.DEFAULT_REQUEST_LOG_QUEUE
    request_log_file_bytes: int = limits.DEFAULT_REQUEST_LOG_FILE_BYTES
    request_log_total_bytes: int = limits.DEFAULT_REQUEST_LOG_TOTAL_BYTES
    models: dict | None = None  # {name: model_dir} instead of scanning `repo`
    workers: int = (
        1  # processes serving REST and gRPC, each with its own sockets (one SO_REUSEPORT group a port)
    )
    worker_index: int = (
        0  # set in a worker: its index (1..workers-1), kept by its replacement; the parent is 0
    )
    rest_fd: int | None = None  # set in a worker: the inherited REST socket
    shared_dir: str | None = (
        None  # set in a worker: the parent's directory of shared admission counts and metrics
    )
    # TLS (tls.py): paths of SSLConfig files (TF Serving's --ssl_config_file), never their contents, so a
    # worker's command line (ps) shows no key. None: plaintext, as TF Serving without the flag.
    ssl_config_file: str | None = None  # gRPC, and REST unless one of the two below
    rest_ssl_config_file: str | None = None  # REST's own certificate (default: ssl_config_file's)
    plain_rest: bool = False  # REST in plaintext while gRPC has TLS (as real TF Serving, whose REST has none)


def bind_rest_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` REST sockets on one port, one per worker process, bound here so that a port in use
    is an error that names it. The first (this process's) listens at once; each of the others
    takes connections once its worker serves.

    With one socket shared by all workers, whichever process woke first accepted every pending
    connection (asyncio accepts up to the backlog per wake-up): wrk's 16 connections all went to
    one of two workers in 2 of 5 runs, at 1,800-2,000 req/s against 3,600 when they split. One
    SO_REUSEPORT socket per worker (ports.py) lets the kernel spread connections by hash instead,
    as nginx's `listen ... reuseport` does. Never SO_REUSEPORT for a lone socket.
    """
    claim = claim_port(host, port, "REST", "--rest-port", shared=count > 1)
    sockets = [claim]
    try:
        claim.listen(2048)  # first: a listening claim keeps a second server from binding the port
        sockets += [join_port(claim, "REST", "--rest-port") for _ in range(count - 1)]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# The cyclic garbage collector's thresholds while serving (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (100_000, 50, 100)


def _tune_gc() -> None:
    """Moves what start-up allocated (TensorFlow, the loaded models: millions of objects) out of the
    garbage collector's reach, and makes collections rare (GC_THRESHOLDS).

    A JSON request is thousands of lists (a 224x224x3 image: 50,000) that live until its array is
    built. At the default thresholds a collection ran every 700 of them and promoted the lists of
    every request in flight, so that the more requests were in flight, the more each collection
    walked: resnet18 at 64 connections fell to 16 req/s from 24 at 16; with these thresholds it
    holds 28 (measured side by side). Request garbage is acyclic (reference counting frees it);
    the rare cycles (exceptions, asyncio) are still collected, just in larger, rarer batches.
    A full collection that walked TensorFlow's objects cost more than a request (measured).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Server:
    """Runs REST and gRPC over one ModelManager. `start()` returns once both listen."""

    def __init__(self, config: ServeConfig):
        self.config = config
        batching = (
            {"max_batch_size": config.max_batch_size, "batch_timeout_micros": config.batch_timeout_micros}
            if config.enable_batching
            else None
        )
        self.manager = ModelManager(
            pathlib.Path(config.repo) if config.models is None and config.repo is not None else None,
            backend=config.backend,
            policy=VersionPolicy.parse(config.version_policy),
            models=config.models,
            models_config=config.models_config,
            batching=batching,
            admission=Admission(
                config.max_inflight, config.max_elements, max_image_pixels=config.max_image_pixels
            ),
            request_timeout=config.request_timeout,
            cheap_row_seconds=config.cheap_model_micros / 1e6,
            require_verification=config.require_verification,
            request_log_limits=LogLimits(
                config.request_log_queue, config.request_log_file_bytes, config.request_log_total_bytes
            ),
        )
        self.rest_port = None
        self.grpc_port = None
        self.grpc = None
        self._grpc_guard = None
        self._shared_dir = config.shared_dir
        self._peers = None
        self._uvicorn = None
        self._loop = None
        self._rest_thread = None
        self._rest_socket = None
        self._stopped = False
        self._signalled = threading.Event()
        self._failure = None  # why the server stopped itself (supervisor.py), if it did
        self._supervisor = None  # in the parent of workers
        self._watchdog = None
        self._worker_sockets: list[socket.socket] = []  # the workers' REST sockets, until each is handed over

    def start(self) -> Server:
        if not 1 <= self.config.workers <= MAX_WORKERS:  # one column each in the shared admission table
            raise InvalidArgumentError(
                f"Invalid value received for workers. Expected a number from 1 to "
                f"{MAX_WORKERS}. Received: workers={self.config.workers}"
            )
        if (
            self.config.rest_fd is not None
        ):  # a worker: the parent bound its REST socket and guards gRPC's port
            self._rest_socket = socket.socket(fileno=self.config.rest_fd)
            grpc_port = self.config.grpc_port
        else:
            self._rest_socket, *self._worker_sockets = bind_rest_sockets(
                self.config.host, self.config.rest_port, self.config.workers
            )
            try:
                self._grpc_guard = bind_grpc_guard(self.config.host, self.config.grpc_port)
            except BaseException:
                self._close_sockets()
                raise
            grpc_port = self._grpc_guard.getsockname()[1]
        try:
            self._start(grpc_port)
        except (
            BaseException
        ):  # (a gRPC port taken meanwhile, a model that does not load...): nothing left open
            try:
                self.stop(grace=0)
            except Exception:  # the first error is the one to report
                log.exception("cleaning up after a failed start")
            finally:
                self._close_sockets()
            raise
        return self

    def _start(self, grpc_port: int) -> None:
        self.rest_port = self._rest_socket.getsockname()[1]
        self._share_across_workers()
        self.manager.sync()
        # gRPC listens from here on (grpcio listens when the port is added): after the models are
        # loaded, so that a worker still loading takes no connection; the claim above already
        # made a port in use an error before the load.
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host  # an IPv6 address
        self.grpc, self.grpc_port = make_grpc_server(
            self.manager,
            f"{host}:{grpc_port}",
            services=grpc_services(self.manager),
            reuse_port=True,
            threads=self._request_threads(16),
            max_concurrent=self.config.max_concurrent_requests,
            max_concurrent_streams=self.config.max_concurrent_streams,
            max_connection_age=self.config.max_connection_age_seconds,
            connection_age_grace=self.config.drain_seconds,
            credentials=grpc_server_credentials(self.config),
        )
        _tune_gc()
        self._start_rest()
        self.grpc.start()
        if self.config.poll_seconds > 0:
            self.manager.start_polling(self.config.poll_seconds)
        self._watchdog = Watchdog(
            {"REST (uvicorn)": lambda: self._rest_thread, "gRPC event loop": lambda: self.grpc.loop_thread},
            self._stopping,
            self._fail,
            exit_after=self.config.drain_seconds + 30,
        ).start()
        install_crash_signals({signal.SIGUSR1: lambda: self.grpc.loop, signal.SIGUSR2: lambda: self._loop})
        if self.config.rest_fd is None and self._worker_sockets:
            self._supervise_workers()

    def _close_sockets(self) -> None:
        for sock in [self._rest_socket, *self._worker_sockets, self._grpc_guard]:
            if sock is not None:
                sock.close()
        self._worker_sockets = []

    def _supervise_workers(self) -> None:
        """Starts workers 1..N-1 (this process is 0) under a Supervisor, which replaces one that
        dies, and returns once every worker serves. A replacement's REST socket joins the port's
        group (the claim still listens here); its gRPC server joins through the guard, as the first did."""

        def spawn(index: int):
            rest_socket = (
                self._worker_sockets.pop(0)
                if self._worker_sockets
                else join_port(self._rest_socket, "REST", "--rest-port")
            )
            return self._spawn_worker(rest_socket, index)

        self._supervisor = Supervisor(
            spawn,
            shared_dir=self._shared_dir,
            counters=self.manager.admission.shared,
            metrics=self.manager.metrics,
            stopping=self._stopping,
            give_up=self._fail,
        )
        self._supervisor.start(range(1, self.config.workers))
        self._supervisor.wait_ready()

    def _stopping(self) -> bool:
        return self._stopped or self._signalled.is_set()

    def _fail(self, message: str) -> None:
        """Ends `serve_forever` with ServingStoppedError(message): a worker kept dying, or a thread ended."""
        self._failure = self._failure or message
        self._signalled.set()

    def _request_threads(self, unbatched: int) -> int:
        """Threads that handle requests: a few per core's worth of work without batching; with it,
        enough to fill a batch, since each request's thread waits for its batch (with 8 threads,
        batches never held more than 8 rows)."""
        if not self.config.enable_batching:
            return unbatched
        return max(unbatched, self.config.max_batch_size + 8)

    def _share_across_workers(self) -> None:
        """With several workers: one admission count per model for all of them (a shared-memory
        table, so --max-inflight is not multiplied by N), and metrics pages that sum all of them."""
        import tempfile

        from kerasdrop.serving.process.metrics_peers import MetricsPeers
        from kerasdrop.serving.process.shared_counters import SharedCounters

        owner = self.config.rest_fd is None
        if owner and self.config.workers > 1:
            self._shared_dir = tempfile.mkdtemp(prefix="kerasdrop-serve-")
        if self._shared_dir is None:
            return
        self.manager.admission.shared = SharedCounters(
            f"{self._shared_dir}/admission", create=owner, worker=self.config.worker_index
        )
        self._peers = MetricsPeers(self._shared_dir, self.manager.metrics).start()

    def _spawn_worker(self, rest_socket: socket.socket, index: int):
        """A worker process serving on `rest_socket`, whose copy here is closed: a worker that dies
        takes its socket with it, and the kernel sends its share of connections to the others."""
        import json
        import subprocess
        import sys

        fields = dataclasses.asdict(self.config) | {
            "rest_fd": rest_socket.fileno(),
            "workers": 1,
            "rest_port": self.rest_port,
            "grpc_port": self.grpc_port,
            "shared_dir": self._shared_dir,
            "worker_index": index,
        }
        if fields["models"] is not None:
            fields["models"] = {name: str(path) for name, path in fields["models"].items()}
        try:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kerasdrop.serving.process.worker",
                    json.dumps(fields),
                    str(os.getpid()),
                ],
                pass_fds=[rest_socket.fileno()],
            )
        finally:
            rest_socket.close()

    def _start_rest(self) -> None:
        import uvicorn

        from kerasdrop.serving.process.http_app import HttpApp
        from kerasdrop.serving.process.uvicorn_protocol import guarded_protocol

        app = HttpApp(
            rest_routers(self.manager),
            max_body_bytes=self.config.max_body_bytes,
            threads=self._request_threads(8),
            max_concurrent=self.config.max_concurrent_requests,
        )
        protocol = guarded_protocol(
            max_header_bytes=self.config.max_header_bytes,
            max_header_count=self.config.max_header_count,
            header_timeout=self.config.header_timeout_seconds,
            body_timeout=self.config.body_timeout_seconds,
        )
        with rest_ssl_options(self.config) as ssl_options:  # the PEM files exist only inside this block
            config = uvicorn.Config(
                app,
                http=protocol,
                loop="asyncio",
                lifespan="off",
                access_log=False,
                log_level="warning",
                timeout_keep_alive=self.config.keep_alive_seconds,
                timeout_graceful_shutdown=self.config.drain_seconds,
                **ssl_options,
            )
            config.load()  # reads the certificate files now (uvicorn.Server.serve would load it later)
        self._uvicorn = uvicorn.Server(config)
        started = threading.Event()

        def run():
            import asyncio

            async def serve():
                self._loop = asyncio.get_running_loop()
                task = asyncio.create_task(self._uvicorn.serve(sockets=[self._rest_socket]))
                while not self._uvicorn.started and not task.done():
                    await asyncio.sleep(0.01)
                started.set()
                await task

            asyncio.run(serve())
            started.set()

        self._rest_thread = threading.Thread(target=run, name="kerasdrop-rest", daemon=True)
        self._rest_thread.start()
        started.wait(timeout=30)

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting on both protocols at once; in-flight requests have `grace` seconds
        (default: drain_seconds) to be answered; then unloads."""
        if self._stopped:
            return
        self._stopped = True
        self.manager.draining = True  # readiness answers false from now on
        grace = self.config.drain_seconds if grace is None else grace
        workers = (
            self._supervisor.stop() if self._supervisor is not None else []
        )  # none replaced from here on
        for worker in workers:  # they drain in parallel with this process
            worker.send_signal(signal.SIGTERM)
        grpc_done = self._stop_grpc(grace)
        if self._uvicorn:
            self._uvicorn.config.timeout_graceful_shutdown = grace
            self._uvicorn.should_exit = True  # uvicorn sees it within 0.1 s; close the listeners now
            try:
                self._loop.call_soon_threadsafe(
                    lambda: [listener.close() for listener in self._uvicorn.servers]
                )
            except RuntimeError:  # its loop ended (the watchdog saw it): take no more connections
                self._rest_socket.close()
        if self._rest_thread:
            self._rest_thread.join(timeout=grace + 5)
            self._uvicorn.config.app.close()
        if grpc_done is not None:
            grpc_done.wait(grace + 5)
        if self._grpc_guard is not None:
            self._grpc_guard.close()
        for worker in workers:
            try:
                worker.wait(timeout=grace + 5)
            except Exception:  # subprocess.TimeoutExpired: a worker that does not drain is ended
                worker.kill()
        if self._peers is not None:
            self._peers.stop()
        if self._shared_dir is not None and self.config.rest_fd is None:
            import shutil

            shutil.rmtree(self._shared_dir, ignore_errors=True)
        self.manager.stop()

    def _stop_grpc(self, grace: float):
        """The event of GrpcServer.stop, or None when there is no gRPC server or its loop ended."""
        try:
            return self.grpc.stop(grace) if self.grpc else None
        except RuntimeError:  # its loop ended (the watchdog saw it): nothing to drain
            return None

    def handle_signals(self) -> Server:
        """SIGTERM and SIGINT end `serve_forever` with a drain; called before `start()`, so that a
        signal while workers are still starting drains too (instead of killing the process)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._signalled.set())
        return self

    def serve_forever(self) -> None:
        """Serves until SIGTERM or SIGINT, then drains. Raises ServingStoppedError, once everything is
        stopped, when the server stopped itself: its workers kept dying, or a protocol's thread ended."""
        self.handle_signals()  # again, if the caller did not: from here on a signal drains
        self._signalled.wait()
        if self._failure is None:
            log.info("draining: no new connections; in-flight requests have %g s", self.config.drain_seconds)
        self.stop()
        if self._failure is not None:
            raise ServingStoppedError(self._failure)
