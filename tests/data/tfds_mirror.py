"""A loopback HTTP mirror of MNIST's four download files, tiny, so TFDS's real download path runs offline.

The files have MNIST's format (gzip'd IDX); every pixel of an image is 25 x its label, so a test can
check that decoding and labels line up. `point_mnist_at(url)` makes TFDS's MNIST builder download
from the mirror and expect the mirror's example counts.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import pathlib
import socket
import threading

TRAIN_EXAMPLES, TEST_EXAMPLES = 60, 20
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", TRAIN_EXAMPLES),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", TEST_EXAMPLES),
}


def write_mirror_files(root: pathlib.Path) -> None:
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    for images_file, labels_file, count in FILES.values():
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = np.repeat(labels * 25, 28 * 28).astype(np.uint8)
        # IDX headers: 16 bytes for images, 8 for labels (TFDS's reader skips them).
        with gzip.open(root / images_file, "wb") as file:
            file.write(b"\0" * 16 + images.tobytes())
        with gzip.open(root / labels_file, "wb") as file:
            file.write(b"\0" * 8 + labels.tobytes())


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror; with `stall_path` set, sends half of that file and then hangs (a dead link)."""

    requests: list[str] = []
    stall_path: str | None = None
    stalled = threading.Event()

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path == type(self).stall_path:
            body = (pathlib.Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            type(self).stalled.set()
            threading.Event().wait(120)  # the client is killed meanwhile
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@contextlib.contextmanager
def serve_mirror(root: pathlib.Path, stall_path: str | None = None):
    """Yields the mirror's base URL; its handler class records the paths requested."""
    write_mirror_files(root)
    handler_class = type(
        "Handler", (MirrorHandler,), {"requests": [], "stall_path": stall_path, "stalled": threading.Event()}
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler_class, directory=str(root))
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler_class
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused, as on a machine with no route out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def point_mnist_at(url: str, setattr_=setattr) -> None:
    """TFDS's MNIST builder downloads from `url` and expects the mirror's counts (`setattr_`: monkeypatch's)."""
    import urllib.parse

    from tensorflow_datasets.image_classification import mnist

    from kerasdrop.data import download

    setattr_(mnist.MNIST, "URL", url)
    setattr_(
        download, "PROBE_HOST", urllib.parse.urlsplit(url).hostname
    )  # the offline probe asks the mirror's host
    setattr_(mnist, "_TRAIN_EXAMPLES", TRAIN_EXAMPLES)
    setattr_(mnist, "_TEST_EXAMPLES", TEST_EXAMPLES)
