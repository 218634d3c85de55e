"""Serving latency and throughput of `kerasdrop serve`, side by side in one run.

lenet5 (8x8x1) exported with `kerasdrop export`; for each backend (tf, onnx) and batching (off, on):
a `kerasdrop serve` process on loopback, then batch-1 requests from this process — REST
(keep-alive HTTP/1.1) and gRPC (the official stub) with 1 and 16 concurrent clients — against the
in-process backend call. Clients and server share this machine's 2 cores.

Goals on this 2-core machine: REST p50 <= 2 ms, REST >= 2,000 req/s and gRPC >= 3,000 req/s at
16 clients (batching on).

    .venv/bin/python bench/serve_latency.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure(call_factory, clients: int, seconds: float):
    """Runs `clients` threads, each calling its own `call()` for `seconds`; returns (p50 ms, p99 ms, req/s)."""
    latencies, barrier, stop = [], threading.Barrier(clients + 1), threading.Event()
    lock = threading.Lock()

    def worker():
        call = call_factory()
        call()  # connect and warm up
        own = []
        barrier.wait()
        while not stop.is_set():
            started = time.perf_counter()
            call()
            own.append(time.perf_counter() - started)
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, len(latencies) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default: 3)")
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import grpc
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kerasdrop.export import export
    from kerasdrop.serving.backends import load_backend
    from kerasdrop.zoo import create_model

    keras.utils.set_random_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    repo = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-serve-bench-")) / "export"
    version_dir = export(model, name="lenet5", repo=repo, models_config=None).path
    image = np.random.default_rng(0).uniform(0, 16, (1, 8, 8, 1)).astype("float32")
    rest_body = json.dumps({"instances": image.tolist()}).encode()
    grpc_request = predict_pb2.PredictRequest()
    grpc_request.model_spec.name = "lenet5"
    grpc_request.inputs["images"].CopyFrom(tf.make_tensor_proto(image))

    print(f"lenet5 8x8x1, batch-1 requests, {args.seconds:g} s per measurement; p50 / p99 ms and requests/s")
    print(f"{'backend':8} {'batching':9} {'path':22} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    summary = {}
    for backend_kind in ("tf", "onnx"):
        backend = load_backend(backend_kind, version_dir)
        p50, p99, rate = measure(lambda: (lambda: backend.run("serving_default", {"images": image})), 1, args.seconds)
        print(f"{backend_kind:8} {'-':9} {'in-process backend':22} {p50:8.3f} {p99:8.3f} {rate:8.0f}")
        summary[(backend_kind, "in-process")] = (p50, p99, rate)
        for batching in (False, True):
            rest_port, grpc_port = free_port(), free_port()
            command = [sys.executable, "-m", "kerasdrop.cli", "serve", "--repo", str(repo), "--backend", backend_kind,
                       "--rest-port", str(rest_port), "--grpc-port", str(grpc_port), "--poll-seconds", "0"]
            if batching:
                command += ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "1000"]
            server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/lenet5", timeout=2).read()
                        break
                    except OSError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise SystemExit("kerasdrop serve did not start")
                        time.sleep(0.3)

                def rest_call():
                    connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=30)

                    def call():
                        connection.request("POST", "/v1/models/lenet5:predict", rest_body,
                                           {"Content-Type": "application/json"})
                        response = connection.getresponse()
                        response.read()
                        assert response.status == 200
                    return call

                channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

                def grpc_call():
                    return lambda: stub.Predict(grpc_request, timeout=30)

                for protocol, factory in (("REST", rest_call), ("gRPC", grpc_call)):
                    for clients in (1, 16):
                        result = measure(factory, clients, args.seconds)
                        label = "on" if batching else "off"
                        print(f"{backend_kind:8} {label:9} {f'{protocol}, {clients} client(s)':22} "
                              f"{result[0]:8.3f} {result[1]:8.3f} {result[2]:8.0f}", flush=True)
                        summary[(backend_kind, batching, protocol, clients)] = result
                channel.close()
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)

    print("overhead of the protocol over the in-process call (p50, 1 client, batching off):")
    for backend_kind in ("tf", "onnx"):
        base = summary[(backend_kind, "in-process")][0]
        rest_p50 = summary[(backend_kind, False, "REST", 1)][0]
        grpc_p50 = summary[(backend_kind, False, "gRPC", 1)][0]
        print(f"  {backend_kind}: REST {rest_p50 / base:.1f}x (+{rest_p50 - base:.3f} ms), "
              f"gRPC {grpc_p50 / base:.1f}x (+{grpc_p50 - base:.3f} ms)")
    print("goals (batching on, 16 clients): REST p50 <= 2 ms, REST >= 2,000 req/s, gRPC >= 3,000 req/s")
    for backend_kind in ("tf", "onnx"):
        rest = summary[(backend_kind, True, "REST", 16)]
        grpc_result = summary[(backend_kind, True, "gRPC", 16)]
        rest_1 = summary[(backend_kind, True, "REST", 1)]
        print(f"  {backend_kind}: REST p50 (1 client) {rest_1[0]:.2f} ms {'met' if rest_1[0] <= 2 else 'NOT met'}; "
              f"REST {rest[2]:.0f} req/s {'met' if rest[2] >= 2000 else 'NOT met'}; "
              f"gRPC {grpc_result[2]:.0f} req/s {'met' if grpc_result[2] >= 3000 else 'NOT met'}")


if __name__ == "__main__":
    main()
