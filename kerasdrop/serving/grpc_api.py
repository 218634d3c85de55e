"""TF Serving's gRPC API with the official tensorflow-serving-api protos and service stubs.

PredictionService: Predict, Classify, Regress, GetModelMetadata; ModelService: GetModelStatus.
Any TF Serving client (`prediction_service_pb2_grpc.PredictionServiceStub`) works against it.
"""

from __future__ import annotations

import socket
import time
from concurrent import futures

from kerasdrop.serving import examples
from kerasdrop.serving.backends import find_signature, signature_def_map
from kerasdrop.serving.errors import ServingError, invalid
from kerasdrop.serving.http_app import INLINE_MAX_BODY_BYTES
from kerasdrop.serving.ports import PortInUseError, claim_port
from kerasdrop.serving.tensors import array_to_proto, tensor_to_array

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _status_code(code: str):
    import grpc

    return getattr(grpc.StatusCode, code, grpc.StatusCode.INTERNAL)


def _spec(manager, model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None
    if not model_spec.name:
        raise invalid("model_spec.name is required")
    return manager.resolve(model_spec.name, version, label)


def _echo(response_spec, loaded, signature: str) -> None:
    response_spec.name = loaded.name
    response_spec.version.value = loaded.version
    response_spec.signature_name = signature


def _examples(request_input):
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return list(request_input.example_list.examples)
    if kind == "example_list_with_context":
        merged = []
        for example in request_input.example_list_with_context.examples:
            combined = type(example)()
            combined.CopyFrom(request_input.example_list_with_context.context)
            combined.MergeFrom(example)
            merged.append(combined)
        return merged
    raise invalid("Input must hold example_list or example_list_with_context")


def _timeout(context) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e6 else None


def _predict_inputs(manager, loaded, signature: str, request) -> dict:
    signature_def = find_signature(loaded.backend, signature, "grpc")
    order = sorted(signature_def.inputs)
    inputs = {}
    for key, proto in request.inputs.items():
        if key not in signature_def.inputs:
            continue  # validate_inputs names every unexpected input in one message
        inputs[key] = tensor_to_array(key, order.index(key), proto, signature_def.inputs[key],
                                      manager.admission.max_elements)
    return inputs | {key: None for key in request.inputs if key not in signature_def.inputs}


def _check_output_filter(wanted, outputs) -> None:
    """TF Serving's checks of `output_filter` (predict_util), in its order, against the signature's
    `outputs` (before the run, as TF Serving does)."""
    seen = set()
    for key in wanted:
        if key not in outputs:
            raise invalid(f"output tensor alias not found in signature: {key}")
        if key in seen:
            raise invalid(f"duplicate output tensor alias: {key}")
        seen.add(key)


def _predict(manager, request, context):
    from tensorflow_serving.apis import predict_pb2

    loaded = _spec(manager, request.model_spec)
    signature = request.model_spec.signature_name or "serving_default"
    inputs = _predict_inputs(manager, loaded, signature, request)
    _check_output_filter(request.output_filter, find_signature(loaded.backend, signature, "grpc").outputs)  # no run
    outputs = manager.run(loaded, signature, inputs, "grpc", _timeout(context))
    wanted = list(request.output_filter) or list(outputs)
    response = predict_pb2.PredictResponse()
    _echo(response.model_spec, loaded, signature)
    for key in wanted:
        array_to_proto(outputs[key], response.outputs[key])
    return response


def _run_examples(manager, request, context, method: str):
    loaded = _spec(manager, request.model_spec)
    signature = request.model_spec.signature_name or "serving_default"
    signature_def = find_signature(loaded.backend, signature, "grpc")
    examples.check_method(signature_def, signature, method)
    (input_name,) = list(signature_def.inputs)
    serialized = examples.serialized_examples(_examples(request.input))
    return loaded, signature, manager.run(loaded, signature, {input_name: serialized}, "grpc", _timeout(context))


def _classify(manager, request, context):
    from tensorflow_serving.apis import classification_pb2

    loaded, signature, outputs = _run_examples(manager, request, context, "tensorflow/serving/classify")
    response = classification_pb2.ClassificationResponse()
    _echo(response.model_spec, loaded, signature)
    for row in examples.classification_results(outputs):
        classifications = response.result.classifications.add()
        for label, score in row:
            classifications.classes.add(label=label, score=score)
    return response


def _regress(manager, request, context):
    from tensorflow_serving.apis import regression_pb2

    loaded, signature, outputs = _run_examples(manager, request, context, "tensorflow/serving/regress")
    response = regression_pb2.RegressionResponse()
    _echo(response.model_spec, loaded, signature)
    for value in examples.regression_results(outputs):
        response.result.regressions.add(value=value)
    return response


def _metadata(manager, request, context):
    from tensorflow_serving.apis import get_model_metadata_pb2

    loaded = _spec(manager, request.model_spec)
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise invalid(f"Metadata field(s) {fields} not supported; expected exactly ['signature_def']")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _echo(response.model_spec, loaded, "")
    response.model_spec.ClearField("signature_name")
    response.metadata["signature_def"].Pack(signature_def_map(loaded.backend))
    return response


def _model_status(manager, request, context):
    from tensorflow_serving.apis import get_model_status_pb2

    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in manager.status(spec.name, version, label):
        status = response.model_version_status.add()
        status.version = int(entry["version"])
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return response


def _guarded(manager, api: str, function):
    """A servicer method: runs `function`, records the metrics, turns a ServingError into its status."""
    def method(self, request, context):
        started = time.perf_counter()
        name = getattr(getattr(request, "model_spec", None), "name", "")
        try:
            response = function(manager, request, context)
        except ServingError as error:
            manager.record_request(name, "", f"grpc:{api}", error.code, time.perf_counter() - started)
            context.abort(_status_code(error.code), error.message)
        spec = getattr(response, "model_spec", None)
        version = spec.version.value if spec is not None and spec.HasField("version") else ""
        manager.record_request(name, version, f"grpc:{api}", "OK", time.perf_counter() - started)
        return response
    return method


def tf_serving_services(manager) -> list:
    """TF Serving's PredictionService and ModelService over `manager` (the official generated bases),
    as `(add_XServicer_to_server, servicer)` pairs for `make_grpc_server`."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    prediction = type("PredictionService", (prediction_service_pb2_grpc.PredictionServiceServicer,), {
        "Predict": _guarded(manager, "predict", _predict), "Classify": _guarded(manager, "classify", _classify),
        "Regress": _guarded(manager, "regress", _regress),
        "GetModelMetadata": _guarded(manager, "metadata", _metadata)})
    model = type("ModelService", (model_service_pb2_grpc.ModelServiceServicer,), {
        "GetModelStatus": _guarded(manager, "status", _model_status)})
    return [(prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server, prediction()),
            (model_service_pb2_grpc.add_ModelServiceServicer_to_server, model())]


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

    def __init__(self, servicer, manager, executor):
        self._servicer, self._manager, self._executor = servicer, manager, executor

    def __getattr__(self, name: str):
        if not _implemented(self._servicer, name):
            return _unimplemented
        method = getattr(self._servicer, name)
        manager, executor = self._manager, self._executor

        async def call(request, context):
            import asyncio

            try:
                if manager.cheap(_request_model(request)) and request.ByteSize() <= INLINE_MAX_BODY_BYTES:
                    return method(request, _SyncContext(context))
                return await asyncio.get_running_loop().run_in_executor(executor, method, request,
                                                                        _SyncContext(context))
            except _Abort as abort:
                code, details = abort.code, abort.details
            # Aborted outside the except block, the request released: aio keeps the abort's exception
            # (and through its traceback this frame) in a reference cycle, which the rarely running
            # collector (server.GC_THRESHOLDS) would free only much later, with the request in it.
            del request
            await context.abort(code, details)

        call.__name__ = name
        return call


class GrpcServer:
    """grpc.aio serving `services` on an event loop in a thread of its own.

    grpcio's synchronous server hands every call from its polling thread to a pool thread; its aio
    server runs the call where it arrives. LeNet-5 Predict over 16 streams, one process: 1,490 req/s
    synchronous, 1,840 aio with the same servicer (measured side by side). `start()` starts
    serving; `stop(grace)` stops accepting at once and returns an event set once the calls in
    flight are answered (at most `grace` seconds).
    """

    def __init__(self, manager, address: str, services: list, threads: int, options: list):
        import asyncio
        import threading

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
        self._server, self.port = self._call(self._create(manager, address, services, options))

    def _call(self, coroutine, timeout: float | None = 60):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _create(self, manager, address: str, services: list, options: list):
        import grpc

        server = grpc.aio.server(options=options)
        for add_to_server, servicer in services:
            add_to_server(_AsyncServicer(servicer, manager, self._executor), server)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises RuntimeError("Failed to bind to address ...")
            port = 0
        return server, port

    def start(self) -> None:
        self._call(self._server.start())
        self._started = True

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
        threading.Thread(target=lambda: (self._thread.join(), done.set()), name="kerasdrop-grpc-stopped",
                         daemon=True).start()
        return done


def make_grpc_server(manager, address: str, *, services: list | None = None, threads: int = 16,
                     reuse_port: bool = False):
    """A started-later gRPC server (GrpcServer: grpc.aio) on `address` with `services` (default: TF
    Serving's) registered: the one registration point for every protocol's gRPC services (see
    protocols.py).

    `reuse_port`: join the SO_REUSEPORT group that `bind_grpc_guard` opened for this server's
    workers. Without it the port is this server's alone.
    Returns `(server, port)`.
    """
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # gRPC turns SO_REUSEPORT on by default: a second server would then bind the same port and
        # silently take part of the traffic. Only this server's own workers share it (bind_grpc_guard).
        ("grpc.so_reuseport", 1 if reuse_port else 0)]
    server = GrpcServer(manager, address, tf_serving_services(manager) if services is None else services, threads,
                        options)
    if server.port == 0:
        server.stop(0)
        raise PortInUseError(f"gRPC port {address.rsplit(':', 1)[1]} on {address.rsplit(':', 1)[0]} is already in "
                             "use (or cannot be bound); choose another with --grpc-port")
    return server, server.port
