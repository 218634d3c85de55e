"""What request logging (models.config logging_config, every request sampled) costs a request's latency.

Two servers over the same exported LeNet-5 (32x32x1), one logging every request and one not, each
under the same gRPC load (--clients threads, one request in flight each); the rounds alternate
between them so both see the same machine. Prints p50 and p99 latency of each and the ratio
logging on / off. The writer thread shares the cores with the server, so this is the whole cost.

    .venv/bin/python bench/request_logging.py [--clients 4] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import threading
import time

LOGGING_CONFIG = """model_config_list {{
  config {{
    name: "lenet5"
    base_path: "/models/lenet5"
    model_platform: "tensorflow"
    logging_config {{
      log_collector_config {{ type: "tfrecord" filename_prefix: "{prefix}" }}
      sampling_config {{ sampling_rate: 1.0 }}
    }}
  }}
}}
"""


def load(port: int, clients: int, seconds: float) -> list[float]:
    """Latencies (ms) of gRPC Predicts sent by `clients` threads for `seconds`."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lenet5"
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 1)).astype("float32")
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image))
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def client():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        stub.Predict(request, timeout=30)  # the channel's connection is not part of the figure
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            stub.Predict(request, timeout=30)
            latencies.append((time.perf_counter() - started) * 1e3)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="client threads (default: 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per round (default: 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating (default: 3)")
    args = parser.parse_args()
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import numpy as np

    from kerasdrop.exporting import export
    from kerasdrop.layout import MODELS_CONFIG_FILE
    from kerasdrop.serving.models.request_log import log_files
    from kerasdrop.serving.process.server import ServeConfig, Server
    from kerasdrop.zoo import create_model

    root = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-request-logging-"))
    keras.utils.set_random_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(32, 32, 1), input_range=(0, 255))
    export(model, name="lenet5", repo=root / "export", formats=("savedmodel",), models_config=None)
    config = root / MODELS_CONFIG_FILE
    config.write_text(LOGGING_CONFIG.format(prefix="logs/lenet5"))
    servers = {}
    for name, models_config in (("off", None), ("on", str(config))):
        config_of_server = ServeConfig(
            repo=str(root / "export"), rest_port=0, grpc_port=0, poll_seconds=0, models_config=models_config
        )
        servers[name] = Server(config_of_server).start()
    latencies = {"off": [], "on": []}
    try:
        for _ in range(args.rounds):
            for name, server in servers.items():
                latencies[name] += load(server.grpc_port, args.clients, args.seconds)
    finally:
        for server in servers.values():
            server.stop(grace=1)
    logged = sum(path.stat().st_size for path in log_files(root / "logs" / "lenet5"))
    print(
        f"lenet5 32x32x1, tf backend, gRPC, {args.clients} clients, {args.rounds} x {args.seconds:g} s "
        "per server (alternating)"
    )
    print(f"  {'request logging':16}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("off", "on"):
        values = np.array(latencies[name])
        p50_ms, p99_ms = np.percentile(values, 50), np.percentile(values, 99)
        print(f"  {name:16}{len(values):>10}{p50_ms:>10.2f}{p99_ms:>10.2f}")
    on, off = (np.percentile(latencies[name], 99) for name in ("on", "off"))
    p50 = np.percentile(latencies["on"], 50) / np.percentile(latencies["off"], 50)
    print(
        f"  logging on / off: p50 x{p50:.2f}, p99 x{on / off:.2f}; "
        f"{logged / 1e6:.1f} MB of PredictionLog written"
    )


if __name__ == "__main__":
    main()
