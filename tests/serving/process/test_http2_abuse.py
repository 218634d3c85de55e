"""The gRPC port under HTTP/2 abuse (docs/http2.md): a raw HTTP/2 client (bench/_support/h2_attackers.py,
in a process of its own) attacks a real `kerasdrop serve --workers 1 --backend onnx` while a
well-behaved gRPC client calls Predict every 20 ms on a connection of its own. With the HTTP/2 bounds off
(bench/serve_exposed.py --http2-only), 6 s of rapid reset got 3 of the other client's 8 calls CANCELLED
and grew the server by +385 MiB; 20,000 streams held open grew it by +372 MiB."""

import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.ports import free_port
from tests.serving.process.test_draining import _start_server

ATTACKERS = pathlib.Path(__file__).resolve().parents[3] / "bench" / "_support" / "h2_attackers.py"
AGE_SECONDS = 3  # --max-connection-age-seconds for these tests: the attacks outlast it (2 * AGE_SECONDS)
MEMORY_BOUND_MB = 150  # the target is 100 MB; headroom for a shared CI machine (bounds off: +385, +372 MiB)


@pytest.fixture
def served(exported_repo):
    """`kerasdrop serve` in a process of its own, fresh for each test (memory that one attack grew and
    freed would hide the next one's growth); yields (process, gRPC port, a Predict request)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    repo, _ = exported_repo
    grpc_port = free_port()
    process = _start_server(
        repo,
        free_port(),
        grpc_port,
        "--workers",
        "1",
        "--poll-seconds",
        "0",
        "--max-connection-age-seconds",
        str(AGE_SECONDS),
        "--drain-seconds",
        "1",
    )
    # Its log is read to the end, so that a full pipe never blocks the server mid-attack.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lenet5"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 8, 8, 1), np.float32)))
    try:
        yield process, grpc_port, request
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _attacked(served, tmp_path, attack: str, seconds: float, *extra: str) -> tuple[dict, dict]:
    """What `attack` got, and what the well-behaved client beside it saw (with the server's memory)."""
    import json

    process, port, request = served
    message = request.SerializeToString()
    body = tmp_path / "grpc.bin"
    body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    command = [
        sys.executable,
        str(ATTACKERS),
        str(port),
        attack,
        str(seconds),
        "--body",
        str(body),
        "--watch-pid",
        str(process.pid),
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    bystander = outcome["bystander"]
    bystander["grown_mb"] = (bystander["rss_peak"] - bystander["rss_idle"]) / 2**20
    return outcome["attack"], bystander


@pytest.mark.slow
def test_rapid_reset_fails_no_other_call_holds_memory_and_ends_in_goaway(served, tmp_path):
    attacker, seen = _attacked(served, tmp_path, "rapid-reset", 2 * AGE_SECONDS)
    assert attacker["streams"] > 10_000, (
        attacker
    )  # the attack ran at full speed (~90,000 streams a second here)
    assert not seen["failed"] and seen["calls"] > 20, seen
    assert seen["p99"] < 1.0, seen
    assert seen["grown_mb"] < MEMORY_BOUND_MB, seen
    # Streams past --max-concurrent-streams were refused before a call was made of them...
    assert attacker["resets"].get("REFUSED_STREAM", 0) > attacker["streams"] // 2, attacker
    # ...and the connection was closed with GOAWAY at its age (gRPC core has no reset-rate trigger).
    assert attacker["goaway"] is not None and attacker["goaway"]["debug"] == "max_age", attacker
    assert attacker["goaway"]["after_seconds"] < 2 * AGE_SECONDS, (
        attacker
    )  # late under load: 4.5 s seen for 3
    assert attacker["closed_by_server_after_seconds"] is not None, attacker


@pytest.mark.slow
def test_twenty_thousand_held_open_streams_hold_little_memory_and_end_at_the_connection_age(served, tmp_path):
    attacker, seen = _attacked(served, tmp_path, "held-streams", 2 * AGE_SECONDS, "--streams", "20000")
    assert attacker["streams"] == 20_000, attacker
    assert not seen["failed"] and seen["p99"] < 1.0, seen
    assert seen["grown_mb"] < MEMORY_BOUND_MB, seen
    from kerasdrop.serving.limits import DEFAULT_MAX_CONCURRENT_STREAMS

    assert attacker["resets"].get("REFUSED_STREAM", 0) >= 20_000 - DEFAULT_MAX_CONCURRENT_STREAMS, attacker
    assert attacker["goaway"] is not None and attacker["closed_by_server_after_seconds"] is not None, attacker


def _advertised_settings(port: int) -> dict:
    """The SETTINGS the gRPC port sends a new HTTP/2 connection: {identifier: value}."""
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        data = b""
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            data += sock.recv(65536)
    assert data[3] == 4, "the server's first frame is its SETTINGS"
    payload = data[9 : 9 + int.from_bytes(data[:3], "big")]
    return dict(struct.unpack(">HI", payload[offset : offset + 6]) for offset in range(0, len(payload), 6))


def test_the_grpc_port_advertises_max_concurrent_streams_and_0_advertises_none(exported_repo):
    from tests.serving.conftest import running_server

    max_concurrent_streams = 0x3  # the SETTINGS identifier (RFC 9113)
    repo, _ = exported_repo
    with running_server(repo=str(repo), max_concurrent_streams=7) as server:
        assert _advertised_settings(server.grpc_port)[max_concurrent_streams] == 7
    with running_server(repo=str(repo), max_concurrent_streams=0) as server:
        assert max_concurrent_streams not in _advertised_settings(server.grpc_port)


def test_http2_bounds_are_grpc_core_arguments_and_0_turns_each_off():
    from kerasdrop.serving.process.grpc_server import _http2_options

    assert _http2_options(0, 0, 10) == []
    options = dict(_http2_options(100, 300, 10))
    assert options["grpc.max_concurrent_streams"] == options["grpc.http2.max_deallocating_streams"] == 100
    assert options["grpc.http.overload_protection"] == 1
    assert (options["grpc.max_connection_age_ms"], options["grpc.max_connection_age_grace_ms"]) == (
        300_000,
        10_000,
    )


@pytest.mark.parametrize("flag", ["--max-concurrent-streams", "--max-connection-age-seconds"])
def test_a_negative_http2_bound_is_a_clear_error(tmp_path, capsys, flag):
    from kerasdrop.cli import main

    assert main(["serve", "--repo", str(tmp_path), flag, "-1"]) == 2
    assert (
        f"Invalid value received for {flag}. Expected 0 or a positive number. Received: -1"
        in capsys.readouterr().err
    )


def test_serve_help_lists_the_http2_bounds_with_their_defaults(capsys):
    from kerasdrop.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-concurrent-streams MAX_CONCURRENT_STREAMS HTTP/2 streams one gRPC connection" in text
    assert "refused with REFUSED_STREAM; 0 turns it off (default: 100)" in text
    assert "closed with GOAWAY" in text and "0 turns it off (default: 300)" in text
