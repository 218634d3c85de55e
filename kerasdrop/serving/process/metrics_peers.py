"""How the worker processes of one `kerasdrop serve --workers N` see each other's metrics: each
answers its snapshot on a Unix socket in the server's shared directory; the worker that answers a
scrape asks the others and sums (exact at scrape time; nothing is copied per request).
"""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import threading

import orjson

log = logging.getLogger("kerasdrop.serve")
PEER_TIMEOUT_SECONDS = 5.0  # a worker busy parsing a huge body holds its GIL for a while


def peer_socket(directory: str, pid: int) -> pathlib.Path:
    """Where process `pid` of the server answers its metrics (the supervisor removes a dead one's)."""
    return pathlib.Path(directory) / f"metrics-{pid}.sock"


class MetricsPeers:
    def __init__(self, directory: str, metrics):
        self.directory = pathlib.Path(directory)
        self.metrics = metrics
        self.path = peer_socket(directory, os.getpid())
        self._listener = None

    def start(self) -> MetricsPeers:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        threading.Thread(target=self._serve, name="kerasdrop-metrics-peer", daemon=True).start()
        self.metrics.peers = self
        return self

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            with connection:
                try:
                    connection.sendall(orjson.dumps(self.metrics.snapshot()))
                except OSError:
                    pass

    def snapshots(self) -> list[dict]:
        """The other workers' snapshots; one that does not answer in time is left out, and logged."""
        found = []
        for path in sorted(self.directory.glob("metrics-*.sock")):
            if path == self.path:
                continue
            try:
                found.append(_ask(path))
            except (OSError, orjson.JSONDecodeError) as error:
                log.warning("metrics of worker socket %s left out of this page: %s", path, error)
        return found

    def stop(self) -> None:
        self.metrics.peers = None
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            self._listener.close()
            self.path.unlink(missing_ok=True)


def _ask(path: pathlib.Path) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(PEER_TIMEOUT_SECONDS)
        connection.connect(str(path))
        chunks = []
        while chunk := connection.recv(1 << 16):
            chunks.append(chunk)
    return orjson.loads(b"".join(chunks))
