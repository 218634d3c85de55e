"""The gRPC server of one worker process: grpc.aio on an event loop of its own, running every
protocol's synchronous servicers (protocols/registry.py) on a thread pool, or on the loop for a
request to a cheap model; its port is claimed for the server and shared only by its own workers.
"""

from __future__ import annotations

import socket
from concurrent import futures

from kerasdrop.serving.limits import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_CONNECTION_AGE_SECONDS,
    INLINE_MAX_BODY_BYTES,
    MAX_MESSAGE_BYTES,
)
from kerasdrop.serving.process.ports import PortInUseError, claim_port


def bind_grpc_guard(host: str, port: int) -> socket.socket:
    """Claims the gRPC port for this server and its workers, before any of them listens on it: every
    worker runs a gRPC server on the port with SO_REUSEPORT (`make_grpc_server(reuse_port=True)`),
    and the claim (ports.py) keeps a second `kerasdrop serve` from joining them. Bound, never
    listening; kept open for the server's life."""
    return claim_port(host, port, "gRPC", "--grpc-port", shared=True)


class _Abort(Exception):
    """`context.abort` of a synchronous servicer method run under grpc.aio (see _SyncContext)."""

    def __init__(self, code, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class _SyncContext:
    """grpcio's synchronous context over an aio one: `abort` raises here and the adapter re-raises
    it as aio's abort (whose own `abort` is a coroutine); the rest is the aio context's."""

    def __init__(self, context):
        self._context = context

    def time_remaining(self):
        return self._context.time_remaining()

    def abort(self, code, details: str):
        raise _Abort(code, details)

    def __getattr__(self, name: str):  # set_code, set_details (the generated UNIMPLEMENTED methods)
        return getattr(self._context, name)


def _request_model(request) -> str:
    """The model a request names: TF Serving's `model_spec.name` or the OIP's `model_name`."""
    spec = getattr(request, "model_spec", None)
    return spec.name if spec is not None else getattr(request, "model_name", "")


def _implemented(servicer, name: str) -> bool:
    """Whether `servicer` implements method `name`, rather than inheriting the generated base's stub
    (which answers UNIMPLEMENTED, and may be a streaming method the adapter below cannot run)."""
    defining = next((cls for cls in type(servicer).__mro__ if name in cls.__dict__), None)
    return defining is not None and not defining.__module__.endswith("_pb2_grpc")


async def _unimplemented(request, context):
    import grpc

    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")  # grpcio's generated text


class _AsyncServicer:
    """A synchronous servicer (grpcio's generated base class) as grpc.aio coroutines: a request to
    a cheap model (manager.cheap) of at most INLINE_MAX_BODY_BYTES runs on the event loop, where the thread
    hop costs more than the work; any other runs on `executor` and the loop waits for it. Methods
    the servicer leaves to its generated base answer UNIMPLEMENTED, as grpcio's threaded server did."""

    def __init__(self, servicer, manager, executor, calls: _CallLimit):
        self._servicer, self._manager, self._executor, self._calls = servicer, manager, executor, calls

    def __getattr__(self, name: str):
        if not _implemented(self._servicer, name):
            return _unimplemented
        method = getattr(self._servicer, name)
        manager, executor, calls = self._manager, self._executor, self._calls

        async def call(request, context):
            import asyncio

            if (
                calls.limit and calls.active >= calls.limit
            ):  # before it queues for a thread (grpcio would CANCEL it much later)
                del request
                await calls.refuse(context)
            calls.active += 1
            try:
                if manager.cheap(_request_model(request)) and request.ByteSize() <= INLINE_MAX_BODY_BYTES:
                    return method(request, _SyncContext(context))
                return await asyncio.get_running_loop().run_in_executor(
                    executor, method, request, _SyncContext(context)
                )
            except _Abort as abort:
                code, details = abort.code, abort.details
            finally:
                calls.active -= 1
            # Aborted outside the except block, the request released: aio keeps the abort's exception
            # (and through its traceback this frame) in a reference cycle, which the rarely running
            # collector (server.GC_THRESHOLDS) would free only much later, with the request in it.
            del request
            await context.abort(code, details)

        call.__name__ = name
        return call


class _CallLimit:
    """The calls in flight in one worker's gRPC server (all on its event loop, so a plain count) and
    their bound, --max-concurrent-requests: beyond it a call is refused at once with
    RESOURCE_EXHAUSTED, before it waits for a thread."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0

    async def refuse(self, context) -> None:
        import grpc

        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"This worker already has {self.limit} gRPC calls in flight "
            "(--max-concurrent-requests); retry later",
        )


class GrpcServer:
    """grpc.aio serving `services` on an event loop in a thread of its own.

    grpcio's synchronous server hands every call from its polling thread to a pool thread; its aio
    server runs the call where it arrives. LeNet-5 Predict over 16 streams, one process: 1,490 req/s
    synchronous, 1,840 aio with the same servicer (measured side by side). `start()` starts
    serving; `stop(grace)` stops accepting at once and returns an event set once the calls in
    flight are answered (at most `grace` seconds).
    """

    def __init__(
        self,
        manager,
        address: str,
        services: list,
        threads: int,
        options: list,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        credentials=None,
    ):
        import asyncio
        import threading

        self._calls = _CallLimit(max_concurrent)
        self._executor = futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kerasdrop-grpc")
        self._loop = asyncio.new_event_loop()
        self._stopped = None  # the event stop() returns, the same one each time
        self._started = False

        def run():
            try:
                self._loop.run_forever()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="kerasdrop-grpc-loop", daemon=True)
        self._thread.start()
        self._server, self.port = self._call(self._create(manager, address, services, options, credentials))

    def _call(self, coroutine, timeout: float | None = 60):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _create(self, manager, address: str, services: list, options: list, credentials):
        import grpc

        server = grpc.aio.server(options=options)
        for add_to_server, servicer in services:
            add_to_server(_AsyncServicer(servicer, manager, self._executor, self._calls), server)
        try:
            port = (
                server.add_insecure_port(address)
                if credentials is None
                else server.add_secure_port(address, credentials)
            )
        except RuntimeError:  # grpcio raises RuntimeError("Failed to bind to address ...")
            port = 0
        return server, port

    def start(self) -> None:
        self._call(self._server.start())
        self._started = True

    @property
    def loop_thread(self):
        """The thread running the event loop: the server answers only while it runs (a watchdog watches it)."""
        return self._thread

    @property
    def loop(self):
        return self._loop

    def stop(self, grace: float | None):
        """Stops accepting now; the returned event is set once in-flight calls are answered (the
        thread pool ends after them: a call accepted before the stop still gets a thread), and
        the loop has ended. A second stop returns the first one's event."""
        import asyncio
        import threading

        if self._stopped is not None:
            return self._stopped
        done = self._stopped = threading.Event()

        async def stop():
            try:
                if not self._started:  # grpc.aio's stop leaves a server that never started bound to its port
                    try:
                        await self._server.start()
                    except Exception:  # (a server without a port): nothing is bound, stop it anyway
                        pass
                await self._server.stop(grace)
            finally:
                self._executor.shutdown(wait=False)
                self._loop.call_soon(self._loop.stop)

        asyncio.run_coroutine_threadsafe(stop(), self._loop)
        threading.Thread(
            target=lambda: (self._thread.join(), done.set()), name="kerasdrop-grpc-stopped", daemon=True
        ).start()
        return done


def _pending_call_options(max_concurrent: int) -> list:
    """gRPC's core keeps calls the server has not taken yet in a queue that drops them at random as
    CANCELLED past 1,000 (and all past 3,000): a burst of 1,500 calls at one worker lost some that
    way before the worker could refuse them with RESOURCE_EXHAUSTED naming the flag. The queue's
    bounds are raised, so that the worker, which takes and refuses thousands of calls a second,
    decides (bursts of 1,500 calls, --max-concurrent-requests 256: no CANCELLED in 10 bursts, where
    8 of 12 bursts had 1-34 before). A pending call holds its stream's flow-control window, not a
    thread. Beyond 20,000 calls at once (or 32x the limit), core's own drops come back."""
    if not max_concurrent:
        return []
    soft = max(10_000, 16 * max_concurrent)
    return [
        ("grpc.server.max_pending_requests", soft),
        ("grpc.server.max_pending_requests_hard_limit", 2 * soft),
    ]


def _http2_options(max_concurrent_streams: int, max_connection_age: float, grace: float) -> list:
    """gRPC core's bounds on one HTTP/2 connection (docs/http2.md has what each was measured to do).

    `max_concurrent_streams` (SETTINGS_MAX_CONCURRENT_STREAMS): with core's overload protection
    (`grpc.http.overload_protection`, on by default, set here so that it stays on) a stream counts
    until core has freed it, not only until it was reset, so a rapid-reset client holds at most
    this many (and as many again being freed: `grpc.http2.max_deallocating_streams`) and every
    stream past them is refused (RST_STREAM REFUSED_STREAM) before a call is made of it. LeNet-5,
    5 s of rapid reset on one connection (bench/http2_core_options.py): without, the other client
    starved (p99 2.4 s) and the server grew +343 MiB; with 100, no failed call, p99 0.39 s, +37 MiB.
    Well-behaved clients queue their calls past the limit themselves (grpc's channels read the
    setting). Without the room for streams being freed, a well-behaved client's calls on one busy
    connection were refused too: 105 of a burst of 1,500 UNAVAILABLE (refused again after core's
    one transparent retry).

    `max_connection_age`: GOAWAY (NO_ERROR, "max_age") to every connection this old (core adds
    +-10% jitter), then `grace` for its calls in flight. gRPC core 1.85 closes no connection for
    its reset rate (no such argument or experiment exists in it), so this bounds how long an
    abusive connection lives, and what streams held open without a message hold.
    """
    options = []
    if max_concurrent_streams:
        options += [
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.http.overload_protection", 1),
            ("grpc.http2.max_deallocating_streams", max_concurrent_streams),
        ]
    if max_connection_age:
        options += [
            ("grpc.max_connection_age_ms", int(max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", int(grace * 1000)),
        ]
    return options


def make_grpc_server(
    manager,
    address: str,
    *,
    services: list | None = None,
    threads: int = 16,
    reuse_port: bool = False,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
    max_connection_age: float = DEFAULT_MAX_CONNECTION_AGE_SECONDS,
    connection_age_grace: float = 10.0,
    credentials=None,
):
    """A started-later gRPC server (GrpcServer: grpc.aio) on `address` with `services` (default: TF
    Serving's) registered: the one registration point for every protocol's gRPC services
    (protocols/registry.py lists them).

    `reuse_port`: join the SO_REUSEPORT group that `bind_grpc_guard` opened for this server's
    workers. Without it the port is this server's alone.
    `credentials`: grpc.ServerCredentials (tls.py: TLS or mutual TLS); None serves plaintext.
    `max_concurrent_streams`, `max_connection_age` (seconds), `connection_age_grace` (seconds): each
    HTTP/2 connection's bounds (_http2_options); 0 turns the first two off.
    Returns `(server, port)`.
    """
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # gRPC turns SO_REUSEPORT on by default: a second server would then bind the same port and
        # silently take part of the traffic. Only this server's own workers share it (bind_grpc_guard).
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        *_pending_call_options(max_concurrent),
        *_http2_options(max_concurrent_streams, max_connection_age, connection_age_grace),
    ]
    if services is None:
        from kerasdrop.serving.protocols.tfserving.grpc_service import (
            tf_serving_services,
        )

        services = tf_serving_services(manager)
    server = GrpcServer(manager, address, services, threads, options, max_concurrent, credentials)
    if server.port == 0:
        server.stop(0)
        raise PortInUseError(
            f"gRPC port {address.rsplit(':', 1)[1]} on {address.rsplit(':', 1)[0]} is already in "
            "use (or cannot be bound); choose another with --grpc-port"
        )
    return server, server.port
