"""Would `kerasdrop serve --backend openvino` pay? OpenVINO against ONNX Runtime on this CPU, side by side.

LeNet-5 at 32x32x1 and resnet18 at 224x224x3, exported as bench/batch_cost.py exports them; OpenVINO
reads the same model.onnx (`openvino.Core().read_model`). Two measurements, each in --rounds rounds
that visit both runtimes in turn (a rotated order), each figure the median over the rounds:

1. per-row cost at batch 1 and 16 (bench/batch_cost.py's method: median time per row over --seconds),
   on one thread (how the onnx backend runs concurrent requests) and on every core;
2. the whole server under wrk, 16 connections, batch-1 JSON requests: the bench's bare Starlette app
   (bench/_support/bare_app.py) with each runtime, so only the runtime differs.

OpenVINO runs in float32 (INFERENCE_PRECISION_HINT f32): on a CPU with bfloat16 its default is
bfloat16, whose answers differ from Keras by more than the verifier's tolerance, so a served model
would not be the verified one. bfloat16's per-row cost is printed beside it (`openvino-bf16`, with
its largest probability difference from ONNX Runtime) and takes no part in the decision.

Then the decision, by the rule of issue 27: add the backend if OpenVINO is >= 1.2x faster on either
model (per-row cost or server throughput), or if batching pays in OpenVINO (batch 16 costs <= 1/1.2
per row of batch 1) where it does not in ONNX Runtime. The machine may be shared: the load average is
printed before and after, and only ratios measured in this one run are compared.

    .venv/bin/python bench/openvino_backend.py [--seconds 2] [--rounds 3] [--server-seconds 4]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
WIN = 1.2  # the bar: a backend is worth its upkeep only at >= 1.2x
BATCHES = (1, 16)
CONNECTIONS = 16
DURATION = {
    "lenet5": 1,
    "resnet18": 3,
}  # wrk runs this many times --server-seconds: resnet18 answers ~1-5 req/s here
RUNTIMES = ("onnxruntime", "openvino", "openvino-bf16")


class OpenVinoSession:
    """An OpenVINO compiled model behind ONNX Runtime's `get_inputs()` / `run(None, feed)`, so
    bench/batch_cost.py's timing loop measures both runtimes the same way."""

    def __init__(self, path: pathlib.Path, threads: int, precision: str = "f32"):
        import openvino

        core = openvino.Core()
        self._compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": precision,
            },
        )
        self._request = self._compiled.create_infer_request()
        self._inputs = [type("Input", (), {"name": port.any_name}) for port in self._compiled.inputs]

    def get_inputs(self):
        return self._inputs

    def run(self, names, feed):
        answer = self._request.infer(feed)
        ports = {port.any_name: port for port in self._compiled.outputs}
        return [answer[ports[name]] for name in names] if names else [answer[port] for port in ports.values()]


def sessions(path: pathlib.Path, threads: int) -> dict:
    from kerasdrop.serving.models.backends import _onnx_session

    return {
        "onnxruntime": _onnx_session(path, threads=threads),
        "openvino": OpenVinoSession(path, threads),
        "openvino-bf16": OpenVinoSession(path, threads, "bf16"),
    }


def largest_difference(path, shape) -> dict:
    """`{runtime: largest |probability - ONNX Runtime's|}` on 4 rows of 0..255 pixels."""
    images = np.random.default_rng(1).uniform(0, 255, (4, *shape)).astype("float32")
    runtimes = sessions(path, 1)
    feed = {runtimes["onnxruntime"].get_inputs()[0].name: images}
    reference = runtimes["onnxruntime"].run(["probabilities"], feed)[0]
    return {
        name: float(np.abs(runtime.run(["probabilities"], feed)[0] - reference).max())
        for name, runtime in runtimes.items()
    }


def rotated(items: list, round_: int) -> list:
    return items[round_ % len(items) :] + items[: round_ % len(items)]


def row_costs(path, shape, threads: int, seconds: float, rounds: int) -> dict:
    """`{(runtime, batch): median seconds per row}` over `rounds` interleaved rounds."""
    from batch_cost import per_row_seconds

    found, runtimes = {}, sessions(path, threads)
    for round_ in range(rounds):
        for runtime in rotated(list(runtimes), round_):
            for batch in BATCHES:
                found.setdefault((runtime, batch), []).append(
                    per_row_seconds(runtimes[runtime], shape, batch, seconds)
                )
    return {key: statistics.median(values) for key, values in found.items()}


def server_throughput(name: str, path, body, seconds: float, rounds: int) -> dict:
    """`{runtime: median req/s}` of the bare app with each runtime under wrk at 16 connections."""
    import contextlib

    from serve_latency import Running, free_port, wrk

    ports, samples, errors = {}, {}, {}
    with contextlib.ExitStack() as stack:
        for runtime in ("onnxruntime", "openvino"):
            ports[runtime] = free_port()
            command = [
                sys.executable,
                str(HERE / "_support" / "bare_app.py"),
                str(path),
                str(ports[runtime]),
                runtime,
            ]
            stack.enter_context(Running(command, f"http://127.0.0.1:{ports[runtime]}/"))
            wrk(
                f"http://127.0.0.1:{ports[runtime]}/v1/models/{name}:predict", body, 4, 2
            )  # warm-up, not counted
        for round_ in range(rounds):
            for runtime in rotated(list(ports), round_):
                sample = wrk(
                    f"http://127.0.0.1:{ports[runtime]}/v1/models/{name}:predict",
                    body,
                    CONNECTIONS,
                    seconds * DURATION[name],
                )
                samples.setdefault(runtime, []).append(sample["rps"])
                errors[runtime] = errors.get(runtime, 0) + sample["errors"]
    # A request unanswered within wrk's 10 s (or a non-2xx) is counted, not fatal: resnet18 at 16
    # connections queues for seconds on a loaded 2-core machine, whichever runtime serves it.
    return {runtime: statistics.median(values) for runtime, values in samples.items()}, errors


def decide(results: dict) -> tuple[bool, list[str]]:
    """The issue's rule on the measured ratios; returns (add the backend, the reasons)."""
    reasons, add = [], False
    for name, result in results.items():
        for threads, costs in result["row_costs"].items():
            for batch in BATCHES:
                speedup = costs[("onnxruntime", batch)] / costs[("openvino", batch)]
                if speedup >= WIN:
                    add = True
                    reasons.append(
                        f"{name}: OpenVINO {speedup:.2f}x faster per row at batch {batch}, {threads} thread(s)"
                    )
            saves = {
                runtime: costs[(runtime, 1)] / costs[(runtime, 16)] for runtime in ("onnxruntime", "openvino")
            }
            if saves["openvino"] >= WIN > saves["onnxruntime"]:
                add = True
                reasons.append(
                    f"{name}: batching pays in OpenVINO ({saves['openvino']:.2f}x per row at 16) and not in "
                    f"ONNX Runtime ({saves['onnxruntime']:.2f}x), {threads} thread(s)"
                )
        rps, _ = result["server"]
        if rps["openvino"] >= WIN * rps["onnxruntime"]:
            add = True
            reasons.append(
                f"{name}: the server answers {rps['openvino'] / rps['onnxruntime']:.2f}x the requests"
            )
    return add, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="time per per-row measurement (default: 2)"
    )
    parser.add_argument(
        "--server-seconds", type=float, default=4.0, help="wrk duration per round (default: 4)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure (default: 3)")
    parser.add_argument(
        "--models", default="lenet5,resnet18", help="models to measure (default: lenet5,resnet18)"
    )
    args = parser.parse_args()
    import json

    import onnxruntime
    import openvino
    from batch_cost import MODELS
    from serve_latency import prepare_to_load

    prepare_to_load()
    import keras

    from kerasdrop.exporting import export
    from kerasdrop.zoo import create_model

    cores = os.cpu_count() or 1
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-openvino-"))
    print(
        f"OpenVINO {openvino.__version__} vs ONNX Runtime {onnxruntime.__version__} on {cores} cores; "
        f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (a shared machine: compare ratios)"
    )
    results = {}
    for name in [one.strip() for one in args.models.split(",") if one.strip()]:
        shape = MODELS[name]
        keras.utils.set_random_seed(0)
        model = create_model(name, num_classes=10, input_shape=shape, input_range=(0, 255))
        path = export(model, name=name, repo=workdir / "export", models_config=None).path / "model.onnx"
        body = workdir / f"{name}.json"
        image = np.random.default_rng(0).uniform(0, 255, (1, *shape)).astype("float32")
        body.write_bytes(json.dumps({"instances": image.tolist()}).encode())
        results[name] = {
            "row_costs": {
                threads: row_costs(path, shape, threads, args.seconds, args.rounds)
                for threads in sorted({1, cores})
            },
            "server": server_throughput(name, path, body, args.server_seconds, args.rounds),
            "difference": largest_difference(path, shape),
        }

    print(
        f"\nper-row cost, median ms per row over {args.rounds} interleaved rounds of {args.seconds:g} s "
        "(ORT/OV > 1: OpenVINO faster)"
    )
    print(
        f"  {'model':9} {'threads':>7} {'batch':>5} {'onnxruntime':>12} {'openvino':>10} {'ORT/OV':>7}"
        f"   {'openvino-bf16':>13} {'ORT/bf16':>8}  (bf16: not eligible, see below)"
    )
    for name, result in results.items():
        for threads, costs in result["row_costs"].items():
            for batch in BATCHES:
                ort, ov, bf16 = (costs[(runtime, batch)] for runtime in RUNTIMES)
                print(
                    f"  {name:9} {threads:>7} {batch:>5} {ort * 1e3:12.3f} {ov * 1e3:10.3f} {ort / ov:7.2f}"
                    f"   {bf16 * 1e3:13.3f} {ort / bf16:8.2f}"
                )
            print(
                f"  {name:9} {threads:>7} batch 1 / batch 16 per row: onnxruntime "
                f"{costs[('onnxruntime', 1)] / costs[('onnxruntime', 16)]:.2f}x, openvino "
                f"{costs[('openvino', 1)] / costs[('openvino', 16)]:.2f}x"
            )
    print(
        f"\nwhole server (bare Starlette app), wrk {CONNECTIONS} connections, batch-1 JSON, median req/s over "
        f"{args.rounds} interleaved rounds of {args.server_seconds:g} s x {DURATION} (errors: non-2xx or unanswered "
        "in 10 s, all rounds)"
    )
    print(
        f"  {'model':9} {'onnxruntime':>12} {'openvino':>10} {'OV/ORT':>7} {'errors ORT':>11} {'errors OV':>10}"
    )
    for name, result in results.items():
        rps, errors = result["server"]
        ratio = rps["openvino"] / rps["onnxruntime"] if rps["onnxruntime"] else float("nan")
        print(
            f"  {name:9} {rps['onnxruntime']:12.1f} {rps['openvino']:10.1f} {ratio:7.2f} "
            f"{errors.get('onnxruntime', 0):11d} {errors.get('openvino', 0):10d}"
        )
    print(
        "\nlargest probability difference from ONNX Runtime (4 rows of 0..255 pixels; the verifier's tolerance "
        "is 1e-5 + 1e-4 * |p|)"
    )
    for name, result in results.items():
        print(
            f"  {name:9} "
            + "  ".join(
                f"{runtime} {value:.2g}"
                for runtime, value in result["difference"].items()
                if runtime != "onnxruntime"
            )
        )
    add, reasons = decide(results)
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if add:
        print("DECISION: add --backend openvino: " + "; ".join(reasons))
    else:
        print(
            f"DECISION: no --backend openvino: OpenVINO is not >= {WIN}x faster than ONNX Runtime on either model "
            "(per row at batch 1 or 16, or the server's req/s), and batching does not pay in it where it does not "
            "in ONNX Runtime"
        )


if __name__ == "__main__":
    main()
