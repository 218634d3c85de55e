"""What each of gRPC core's HTTP/2 options does against rapid reset on `kerasdrop serve`'s gRPC port
(docs/http2.md), each measured on a fresh server, so that the defaults chosen in
kerasdrop/serving/process/grpc_server.py (_http2_options) can be checked against the alternatives.

Every candidate runs `kerasdrop serve --workers 1 --backend onnx` (LeNet-5 at 32x32x1, as
bench/serve_exposed.py exports it) with gRPC core's channel arguments changed from what kerasdrop
sets (grpc.aio.server is wrapped in the server's process; the flags stay as given), then:
1. rapid reset on one connection for --seconds (bench/_support/h2_attackers.py) while a well-behaved
   client calls Predict every 20 ms on its own connection: its calls, failures, p99, the server's
   RSS growth (all its processes), what the attacker's streams got and whether its connection ended;
2. with --burst, a burst of 1,500 calls at once on one channel against the same server, restarted
   with --max-concurrent-requests 4 (so that most are refused and streams churn): each call must be
   OK or RESOURCE_EXHAUSTED, never CANCELLED or UNAVAILABLE (tests/serving/test_hostile_clients.py).

    .venv/bin/python bench/http2_core_options.py [--seconds 5] [--burst] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_exposed import HTTP2_BOUNDS_OFF, MODEL, export_model
from serve_latency import free_port, prepare_to_load

from kerasdrop.serving.limits import DEFAULT_MAX_CONCURRENT_REQUESTS
from kerasdrop.serving.process.grpc_server import _pending_call_options

# kerasdrop's raised pending-call limits: removed, core's own defaults apply.
PENDING = [key for key, _ in _pending_call_options(DEFAULT_MAX_CONCURRENT_REQUESTS)]
# name: (serve flags, channel arguments set (value) or removed (None) over kerasdrop's own)
CANDIDATES = {
    "before (core's HTTP/2 defaults)": (HTTP2_BOUNDS_OFF, {}),
    "core's pending-call defaults too": (HTTP2_BOUNDS_OFF, dict.fromkeys(PENDING)),
    "max_concurrent_streams 100, overload protection off": (
        ["--max-connection-age-seconds", "0"],
        {"grpc.http.overload_protection": 0, "grpc.http2.max_deallocating_streams": None},
    ),
    "max_concurrent_streams 100, no room for streams being freed": (
        ["--max-connection-age-seconds", "0"],
        {"grpc.http2.max_deallocating_streams": None},
    ),
    "shipped: 100 + overload protection + 100 being freed": (["--max-connection-age-seconds", "0"], {}),
    "shipped, core's pending-call defaults": (["--max-connection-age-seconds", "0"], dict.fromkeys(PENDING)),
    "max_concurrent_streams 1000 (+1000 being freed)": (
        ["--max-concurrent-streams", "1000", "--max-connection-age-seconds", "0"],
        {},
    ),
    "max_connection_age 3 s alone": (
        ["--max-concurrent-streams", "0", "--max-connection-age-seconds", "3"],
        {},
    ),
    "ping_on_rst_stream_percent 100 alone": (
        HTTP2_BOUNDS_OFF,
        {"grpc.http2.ping_on_rst_stream_percent": 100},
    ),
    "server_max_unrequested_time_in_server 1 s alone": (
        HTTP2_BOUNDS_OFF,
        {"grpc.server_max_unrequested_time_in_server": 1},
    ),
    "shipped, max_connection_age 3 s": (["--max-connection-age-seconds", "3"], {}),
}

# Runs `kerasdrop serve` with grpc.aio.server's options changed by the JSON in argv[1].
BOOT = """
import json, sys
import grpc.aio
changes, create = json.loads(sys.argv[1]), grpc.aio.server
def server(*args, options=(), **kwargs):
    kept = [(key, value) for key, value in options if key not in changes]
    return create(*args, options=kept + [(k, v) for k, v in changes.items() if v is not None], **kwargs)
grpc.aio.server = server
from kerasdrop.cli import main
sys.exit(main(sys.argv[2:]))
"""


class Serving:
    """`kerasdrop serve` with `changes` to core's options, for a `with` block."""

    def __init__(self, repo: pathlib.Path, flags: list, changes: dict):
        self.grpc_port = free_port()
        self.command = [
            sys.executable,
            "-c",
            BOOT,
            json.dumps(changes),
            "serve",
            "--repo",
            str(repo),
            "--backend",
            "onnx",
            "--workers",
            "1",
            "--rest-port",
            str(free_port()),
            "--grpc-port",
            str(self.grpc_port),
            "--poll-seconds",
            "0",
            *flags,
        ]

    def __enter__(self):
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        while "kerasdrop serve: REST" not in self.process.stdout.readline():
            if self.process.poll() is not None:
                raise SystemExit(f"server exited early: {self.command}")
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def rapid_reset(serving: Serving, grpc_body: pathlib.Path, seconds: float) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "_support" / "h2_attackers.py"),
            str(serving.grpc_port),
            "rapid-reset",
            str(seconds),
            "--body",
            str(grpc_body),
            "--watch-pid",
            str(serving.process.pid),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def burst(serving: Serving, grpc_body: pathlib.Path, calls: int = 1500) -> dict:
    """Status codes of `calls` Predict calls started at once on one channel."""
    import collections

    import grpc

    message, codes = grpc_body.read_bytes()[5:], collections.Counter()
    with grpc.insecure_channel(f"127.0.0.1:{serving.grpc_port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        futures = [predict.future(message, timeout=60) for _ in range(calls)]
        for future in futures:
            try:
                future.result()
                codes["OK"] += 1
            except grpc.RpcError as error:
                codes[error.code().name] += 1
    return dict(codes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each attack lasts (default: 5)")
    parser.add_argument("--burst", action="store_true", help="also a 1,500-call burst per candidate")
    parser.add_argument("--only", nargs="*", help="candidates whose name contains one of these words")
    args = parser.parse_args()
    prepare_to_load()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-h2-bench-"))
    _, grpc_body = export_model(workdir)
    print(
        f"{MODEL} (32x32x1), kerasdrop serve --workers 1 --backend onnx, a fresh server per row; rapid reset on "
        f"one connection for {args.seconds:g} s beside a client calling Predict every 20 ms"
    )
    print(
        f"  {'candidate':58} {'calls':>5} {'failed':>6} {'p99 ms':>7} {'RSS +MiB':>8} {'streams':>7} "
        f"{'refused':>7}  connection{'   burst of 1,500' if args.burst else ''}"
    )
    for name, (flags, changes) in CANDIDATES.items():
        if args.only and not any(word in name for word in args.only):
            continue
        with Serving(workdir / "export", flags, changes) as serving:
            outcome = rapid_reset(serving, grpc_body, args.seconds)
        if args.burst:
            with Serving(workdir / "export", [*flags, "--max-concurrent-requests", "4"], changes) as serving:
                burst_codes = burst(serving, grpc_body)
        hostile, calm = outcome["attack"], outcome["bystander"]
        failed = sum(calm["failed"].values())
        goaway = hostile["goaway"]
        ended = (
            f"GOAWAY after {goaway['after_seconds']:g} s"
            if goaway
            else "closed"
            if hostile["closed_by_server_after_seconds"] is not None
            else "open"
        )
        print(
            f"  {name:58} {calm['calls']:5d} {failed:6d} {calm['p99'] * 1000:7.0f} "
            f"{(calm['rss_peak'] - calm['rss_idle']) / 2**20:8.0f} {hostile['streams']:7d} "
            f"{hostile['resets'].get('REFUSED_STREAM', 0):7d}  {ended:10}"
            + (f"   {json.dumps(burst_codes, sort_keys=True)}" if args.burst else "")
            + (f"  failed: {json.dumps(calm['failed'])}" if failed else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
