"""Image-bytes requests (`serving_bytes`, `{"b64": ...}`) against float JSON, side by side in one run.

Models: LeNet-5 at 32x32x1 and resnet18 at 224x224x3, exported with `kerasdrop export --image-bytes`
and served by `kerasdrop serve` (tf backend: serving_bytes decodes in the TensorFlow graph). One
image per request, the bodies built once: float JSON (`instances`, what a client sends for the
decoded pixels) and, as `{"b64": ...}`, PNG and JPEG (quality 90) of a smooth picture and of noise. Each is
sent sequentially over
one keep-alive connection, interleaved round by round, so machine load hits them alike; the figures
to read are the ratios to float JSON.

    .venv/bin/python bench/image_bytes.py [--requests 200] [--models lenet5,resnet18]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_latency import MODELS, Running, free_port  # noqa: E402  (the serving bench's models and helpers)


def export_with_bytes(name: str, workdir: pathlib.Path) -> None:
    import keras

    from kerasdrop.exporting import export
    from kerasdrop.zoo import create_model

    keras.utils.set_random_seed(0)
    model = create_model(name, num_classes=10, **MODELS[name])
    export(
        model,
        name=name,
        repo=workdir / "export",
        models_config=None,
        image_bytes=True,
        formats=["savedmodel"],
    )


def pictures(shape) -> dict:
    """A smooth picture (gradients and a disc: compresses like a photo's flat regions) and uniform noise
    (incompressible: the upper bound of an encoded image's size)."""
    import numpy as np

    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]]
    disc = ((rows - shape[0] / 2) ** 2 + (columns - shape[1] / 3) ** 2 < (shape[0] / 4) ** 2) * 90
    planes = [
        (rows * 255 // shape[0] + disc) % 256,
        (columns * 255 // shape[1]) % 256,
        (rows + columns + disc) % 256,
    ]
    smooth = np.stack(planes[: shape[2]], axis=-1).astype("uint8")
    noise = np.random.default_rng(0).integers(0, 256, shape).astype("uint8")
    return {"smooth": smooth, "noise": noise}


def bodies(name: str) -> dict[str, bytes]:
    """Float JSON of the smooth picture, then b64 PNG and JPEG (quality 90) request bodies of both pictures."""
    from PIL import Image

    images = pictures(MODELS[name]["input_shape"])
    found = {"float JSON": json.dumps({"instances": [images["smooth"].astype(float).tolist()]}).encode()}
    for picture, pixels in images.items():
        for image_format, options in (("PNG", {}), ("JPEG", {"quality": 90})):
            buffer = io.BytesIO()
            Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(
                buffer, format=image_format, **options
            )
            found[f"{image_format} {picture}"] = json.dumps(
                {
                    "signature_name": "serving_bytes",
                    "instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}],
                }
            ).encode()
    return found


def wait_until_available(port: int, name: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/v1/models/{name}")
        response = connection.getresponse()
        if response.status == 200 and b'"AVAILABLE"' in response.read():
            return
        time.sleep(0.5)
    raise SystemExit(f"{name} did not become available")


def latencies(port: int, name: str, requests: dict[str, bytes], count: int) -> dict[str, list[float]]:
    wait_until_available(port, name)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    timings = {kind: [] for kind in requests}
    for round_index in range(count + 5):  # the first 5 rounds warm up
        for kind, body in requests.items():
            started = time.perf_counter()
            connection.request(
                "POST", f"/v1/models/{name}:predict", body, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{kind} request to {name} answered {response.status}")
            if round_index >= 5:
                timings[kind].append(time.perf_counter() - started)
    connection.close()
    return timings


def report(name: str, requests: dict[str, bytes], timings: dict[str, list[float]]) -> None:
    shape = "x".join(str(d) for d in MODELS[name]["input_shape"])
    print(f"\n{name} {shape}, {len(next(iter(timings.values())))} sequential requests each (ms)")
    print(
        f"  {'request':<12} {'bytes':>10} {'size ratio':>10} {'median':>8} {'p90':>8} {'latency ratio':>13}"
    )
    base_size, base_median = len(requests["float JSON"]), statistics.median(timings["float JSON"])
    for kind, body in requests.items():
        values = sorted(timings[kind])
        median, p90 = statistics.median(values), values[int(0.9 * (len(values) - 1))]
        print(
            f"  {kind:<12} {len(body):>10,} {len(body) / base_size:>10.3f} {1000 * median:>8.2f} "
            f"{1000 * p90:>8.2f} {median / base_median:>13.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=200, help="requests of each kind per model (default: 200)"
    )
    parser.add_argument(
        "--models", default="lenet5,resnet18", help="comma-separated (default: lenet5,resnet18)"
    )
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-bytes-bench-"))
    names = args.models.split(",")
    for name in names:
        export_with_bytes(name, workdir)
    rest_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "kerasdrop.cli",
        "serve",
        "--repo",
        str(workdir / "export"),
        "--backend",
        "tf",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
        "--poll-seconds",
        "0",
    ]
    print(
        "one image per request, REST, kerasdrop serve --backend tf; ratios are to float JSON of the same pixels"
    )
    with Running(command, f"http://127.0.0.1:{rest_port}/v1/models/{names[-1]}"):
        for name in names:
            requests = bodies(name)
            report(name, requests, latencies(rest_port, name, requests, args.requests))


if __name__ == "__main__":
    main()
