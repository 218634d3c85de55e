"""What a user's `kerasdrop serve` costs per request: the default backend against each explicit one.

LeNet-5 at 32x32x1 (and resnet18 at 224x224x3 with --models), batch-1 requests, exported as
bench/serve_latency.py exports them. Servers, all running at once and each measured in turn in
--rounds interleaved rounds (figures are medians; serve_latency.measure_model says why): the bare
Starlette + onnxruntime app (the reference), and `kerasdrop serve` with its default --workers and
every request limit at its default, for the default backend (no --backend) and --backend tf and onnx.
Per server it measures REST at 1 connection (p50) and 16 (wrk), gRPC as 16 connections x 1 stream
and 4 x 4 (h2load), and over the REST 16 run the server's CPU time per request: utime + stime of
every server process from /proc, divided by the requests wrk completed. Beside it, the essential
cost of the same request measured alone in this process: JSON decode of the body, one run of the
row on the default backend, JSON encode of the answer. It also prints how the gRPC 4x4 run's CPU
fell on the worker processes (4 connections on 2 workers can land 3:1 or 4:0).

With --profile, after the rounds it samples the servers with py-spy (the `bench` extra) during one
more load run of each cell in PROFILED and prints each profile's top entries
(bench/_support/pyspy_top.py): one request at a time (REST 1 conn), REST 16 (where the CPU per
request beyond the essential cost goes) and gRPC 4x4 (the gRPC path), on the default backend and
on --backend tf.

    .venv/bin/python bench/serve_cost.py [--seconds 4] [--rounds 3] [--models lenet5] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _support.pyspy_top import top
from serve_latency import (
    DURATION,
    MODELS,
    Running,
    _cpu_ticks,
    _family,
    cpu_times,
    export_models,
    free_port,
    h2load,
    median_sample,
    prepare_to_load,
    print_targets,
    wait_until_idle,
    wrk,
)

DEFAULT = "default"  # `kerasdrop serve` without --backend
SERVERS = ("bare", DEFAULT, "tf", "onnx")
CELLS = ("rest1", "rest16", "grpc16", "grpc4x4")
PROFILED = [(DEFAULT, "rest1"), (DEFAULT, "rest16"), (DEFAULT, "grpc4x4"), ("tf", "grpc4x4")]
CELL_NAMES = {"rest1": "REST 1 conn", "rest16": "REST 16", "grpc16": "gRPC 16x1", "grpc4x4": "gRPC 4x4"}


def serve_command(repo, rest_port: int, grpc_port: int, backend: str, workers: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "kerasdrop.cli",
        "serve",
        "--repo",
        str(repo),
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
        "--poll-seconds",
        "0",
        "--workers",
        str(workers),
    ]
    return command if backend == DEFAULT else command + ["--backend", backend]


def _process_ticks(pid: int) -> dict[int, int]:
    """CPU ticks of each kerasdrop process of the server (the parent and its workers; a worker's
    parse-lane children are counted with it)."""
    workers = {member: _family(member) for member in _family(pid) if _parent(member) == pid}
    own = _family(pid).difference(*workers.values())
    return {pid: _cpu_ticks(own), **{worker: _cpu_ticks(family) for worker, family in workers.items()}}


def _parent(pid: int) -> int | None:
    try:
        return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def load_cell(name: str, cell: str, ports, bodies, seconds: float, pid: int) -> dict:
    """One load run of `cell`, with the server's CPU ticks per process over it."""
    rest_port, grpc_port = ports
    _, rest_body, grpc_body = bodies
    before = _process_ticks(pid)
    if cell.startswith("rest"):
        sample = wrk(
            f"http://127.0.0.1:{rest_port}/v1/models/{name}:predict", rest_body, int(cell[4:]), seconds
        )
    else:
        sample = h2load(
            f"http://127.0.0.1:{grpc_port}/tensorflow.serving.PredictionService/Predict",
            grpc_body,
            16,
            seconds,
            connections=4 if cell == "grpc4x4" else 16,
        )
    after = _process_ticks(pid)
    per_process = [after.get(process, 0) - before.get(process, 0) for process in after]
    sample["cpu_seconds"] = sum(per_process) / os.sysconf("SC_CLK_TCK")
    shares = sorted(per_process, reverse=True)
    sample["busiest_share"] = shares[0] / max(sum(shares), 1)  # of the server's CPU, on its busiest process
    return sample


def essential_seconds(version_dir: pathlib.Path, rest_body: pathlib.Path, runs: int = 2000) -> dict:
    """The request's own work, alone in this process, median seconds of each step: orjson decode of
    the body, the float32 array, one run of the row on the default backend, orjson encode of the
    answer (TF Serving's row format)."""
    import numpy as np
    import orjson

    from kerasdrop.serving.models.backends import DEFAULT_BACKEND, load_backend

    backend = load_backend(DEFAULT_BACKEND, version_dir)
    body = rest_body.read_bytes()
    input_name = next(iter(backend.signature_defs["serving_default"].inputs))
    steps = {"decode": [], "run": [], "encode": []}
    for _ in range(runs):
        started = time.perf_counter()
        images = np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
        decoded = time.perf_counter()
        outputs = backend.run("serving_default", {input_name: images})
        ran = time.perf_counter()
        columns = {key: value.tolist() for key, value in outputs.items()}
        orjson.dumps(
            {
                "predictions": [
                    {key: column[row] for key, column in columns.items()} for row in range(len(images))
                ]
            }
        )
        encoded = time.perf_counter()
        steps["decode"].append(decoded - started)
        steps["run"].append(ran - decoded)
        steps["encode"].append(encoded - ran)
    result = {step: statistics.median(times) for step, times in steps.items()}
    result["backend"] = f"{backend.name} ({backend.chosen})"
    return result


def profile_cell(name: str, server: str, cell: str, ports, bodies, seconds: float, pid: int) -> str:
    """py-spy's top entries for the server process `pid` and its workers over one load run of `cell`."""
    import subprocess

    raw = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-profile-")) / "profile.raw"
    spy = pathlib.Path(sys.executable).with_name("py-spy")
    sampler = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--subprocesses", "-d", str(int(seconds) + 2), "-r", "200"]
        + ["--format", "raw", "-o", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches to every process first
    load_cell(name, cell, ports, bodies, seconds, pid)
    if sampler.wait() != 0 or not raw.exists():
        return f"py-spy could not sample the server (exit {sampler.returncode}; it needs ptrace permission)"
    label = "default backend" if server == DEFAULT else f"--backend {server}"
    return f"\n{name}, {label}, {CELL_NAMES[cell]}: py-spy at 200 Hz over the server's processes\n{top(str(raw), 12)}"


def measure(
    name: str, bodies, repo, seconds: float, rounds: int, workers: int, profile: bool = False
) -> dict:
    seconds *= DURATION[name]
    ports, pids, samples = {}, {}, {}
    with contextlib.ExitStack() as stack:
        for server in SERVERS:
            wait_until_idle(list(pids.values()))
            rest_port, grpc_port = free_port(), free_port()
            if server == "bare":
                command = [
                    sys.executable,
                    str(HERE / "_support" / "bare_app.py"),
                    str(bodies[0]),
                    str(rest_port),
                ]
                probe = f"http://127.0.0.1:{rest_port}/"
            else:
                command = serve_command(repo, rest_port, grpc_port, server, workers)
                probe = f"http://127.0.0.1:{rest_port}/v1/models/{name}"
            pids[server] = stack.enter_context(Running(command, probe)).pid
            ports[server] = (rest_port, grpc_port)
            wrk(f"http://127.0.0.1:{rest_port}/v1/models/{name}:predict", bodies[1], 4, 2)  # warm-up
        for round_ in range(rounds):
            for cell in CELLS:
                order = SERVERS[round_ % len(SERVERS) :] + SERVERS[: round_ % len(SERVERS)]
                for server in order:
                    if server == "bare" and cell.startswith("grpc"):
                        continue
                    wait_until_idle(list(pids.values()))
                    samples.setdefault((server, cell), []).append(
                        load_cell(name, cell, ports[server], bodies, seconds, pids[server])
                    )
        profiles = [
            profile_cell(name, server, cell, ports[server], bodies, seconds, pids[server])
            for server, cell in (PROFILED if profile else [])
        ]
    results = {key: median_sample(values) for key, values in samples.items()}
    for key, values in samples.items():  # per request: CPU of each round over its requests, median
        if key[1].startswith("rest"):
            results[key]["cpu_per_request"] = statistics.median(
                v["cpu_seconds"] / max(v["requests"], 1) for v in values
            )
    results["profiles"] = profiles
    return results


def report(name: str, results: dict, essential: dict, load: str) -> list[bool]:
    print(f"\n{name}: req/s (p50 ms), medians over the rounds; {load}")
    print(
        f"  {'server':34} {'REST 1 conn':>16} {'REST 16':>16} {'gRPC 16x1':>10} {'gRPC 4x4':>10} "
        f"{'CPU/req REST16':>15}"
    )
    for server in SERVERS:
        label = {"bare": "bare Starlette+ORT app", DEFAULT: "kerasdrop serve (default backend)"}.get(
            server, f"kerasdrop serve --backend {server}"
        )
        rest = [
            f"{results[(server, c)]['rps']:8.0f} ({results[(server, c)]['p50'] * 1e3:5.2f})"
            for c in ("rest1", "rest16")
        ]
        grpc = [
            f"{results[(server, c)]['rps']:10.0f}" if (server, c) in results else f"{'-':>10}"
            for c in ("grpc16", "grpc4x4")
        ]
        cpu = results[(server, "rest16")]["cpu_per_request"] * 1e3
        print(f"  {label:34} {rest[0]:>16} {rest[1]:>16} {grpc[0]} {grpc[1]} {cpu:12.3f} ms")
    for server in (DEFAULT, "tf", "onnx"):
        share = results[(server, "grpc4x4")]["busiest_share"]
        print(
            f"  gRPC 4x4 placement, {server}: the busiest server process did {share:.0%} of the server's CPU"
        )
    essential_total = essential["decode"] + essential["run"] + essential["encode"]
    print(
        f"  essential cost of one request alone in one process, default backend = {essential['backend']}: "
        f"decode {essential['decode'] * 1e3:.3f} ms + run {essential['run'] * 1e3:.3f} ms + encode "
        f"{essential['encode'] * 1e3:.3f} ms = {essential_total * 1e3:.3f} ms"
    )

    def default(cell):
        return results[(DEFAULT, cell)]

    cheap = name == "lenet5"
    floor = 0.8 if cheap else 1.0  # the performance issue's decision: a cheap model's gRPC >= 0.8x REST
    checks = [
        (
            "default backend REST 16 vs --backend tf",
            default("rest16")["rps"] / results[("tf", "rest16")]["rps"],
            ">= 1.0x",
            1.0,
        ),
        (
            "default backend gRPC 16x1 vs REST 16",
            default("grpc16")["rps"] / default("rest16")["rps"],
            f">= {floor:.1f}x",
            floor,
        ),
        (
            "default backend gRPC 4x4 vs REST 16",
            default("grpc4x4")["rps"] / default("rest16")["rps"],
            f">= {floor:.1f}x",
            floor,
        ),
        (
            "--backend tf gRPC 4x4 vs its REST 16",
            results[("tf", "grpc4x4")]["rps"] / results[("tf", "rest16")]["rps"],
            f">= {floor:.1f}x",
            floor,
        ),
        (
            "default backend REST p50 1 conn vs bare app",
            default("rest1")["p50"] / results[("bare", "rest1")]["p50"],
            "<= 1.0x",
            -1.0,
        ),
    ]
    if cheap:
        checks.append(
            (
                "server CPU per request vs essential cost, REST 16",
                default("rest16")["cpu_per_request"] / essential_total,
                "<= 2.0x",
                -2.0,
            )
        )
    return print_targets(checks, width=52)


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each load run (default: 4)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; figures are medians (default: 3)"
    )
    parser.add_argument(
        "--models", default="lenet5", help="comma-separated, of lenet5,resnet18 (default: lenet5)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print py-spy profiles of the servers under load"
    )
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise SystemExit(
            f"Invalid value received for --models. Expected names from {', '.join(MODELS)}. "
            f"Received: {','.join(unknown)}"
        )
    prepare_to_load()
    from kerasdrop.cli.serving import DEFAULT_WORKERS as workers

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-serve-cost-"))
    bodies = export_models(names, workdir)
    print(
        f"batch-1 requests, {args.seconds:g} s per load run, median of {args.rounds} interleaved rounds; "
        f"kerasdrop serve --workers {workers}, every request limit at its default; "
        f"{machine_load()} at the start"
    )
    passed, started = [], cpu_times()
    for name in names:
        results = measure(
            name, bodies[name], workdir / "export", args.seconds, args.rounds, workers, args.profile
        )
        essential = essential_seconds(bodies[name][0].parent, bodies[name][1])
        passed += report(name, results, essential, machine_load())
        for profile in results["profiles"]:
            print(profile)
    spent = [after - before for before, after in zip(started, cpu_times())]
    print(
        f"\n{sum(passed)} of {len(passed)} targets met; CPU time stolen by other guests of this host "
        f"during the run: {100 * spent[7] / max(sum(spent), 1):.1f}%; {machine_load()} at the end"
    )


if __name__ == "__main__":
    main()
