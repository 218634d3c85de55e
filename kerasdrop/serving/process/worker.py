"""A worker process of `kerasdrop serve --workers N`: its own model manager (polling the same
repository), uvicorn on the REST socket it inherits and a gRPC server, each in its port's
SO_REUSEPORT group (ports.py), so the kernel spreads connections across processes, each with its own GIL.
Admission counts and metrics are shared through the parent's directory (`shared_dir`). The parent
replaces a worker that exits for any reason (supervisor.py); this one exits non-zero when a
protocol's thread ended (its watchdog), and stops when the parent dies.

    python -m kerasdrop.serving.process.worker '<ServeConfig as JSON, rest_fd set>' <parent pid>
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (kill -9) stops too, instead of serving on alone.

    `parent` is the pid the parent passed: a parent that died before the worker got this far (it
    imports TensorFlow for seconds) has already handed it to init, and `os.getppid()` would watch init.
    """

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="kerasdrop-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    _exit_with_parent(
        int(argv[1]) if len(argv) > 1 else os.getppid()
    )  # first: TensorFlow's import takes seconds
    from kerasdrop._quiet import import_tensorflow_quietly
    from kerasdrop.serving.process.server import ServeConfig, Server
    from kerasdrop.serving.process.supervisor import ServingStoppedError, ready_path

    import_tensorflow_quietly()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(name)s[worker {os.getpid()}]: %(message)s")
    config = ServeConfig(**json.loads(argv[0]))
    server = Server(config).handle_signals()
    server.start()
    ready_path(config.shared_dir, os.getpid()).touch()  # the parent waits for this
    try:
        server.serve_forever()
    except ServingStoppedError:  # the watchdog logged why; the parent starts a replacement
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
