"""Supervision of `kerasdrop serve`: the parent replaces a worker process that dies (`Supervisor`),
and in every process a `Watchdog` stops the process when its REST or gRPC thread ends while it is
not stopping, so that no process serves one protocol with the other dead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import threading
import time

from kerasdrop.errors import KerasdropError
from kerasdrop.serving.process.metrics_peers import peer_socket

log = logging.getLogger("kerasdrop.serve")

# A worker that keeps dying is not replaced forever: after MAX_DEATHS deaths within
# DEATH_WINDOW_SECONDS the server stops, exit status 2, so that its orchestrator (systemd,
# Kubernetes) restarts it and reports the crash loop. A death counts until the window has passed
# and its replacement serves: a worker that dies while starting (every few seconds, a model that
# crashes the process on load) keeps counting however slowly it dies.
MAX_DEATHS = 5
DEATH_WINDOW_SECONDS = 60.0
RESTARTS_METRIC = ":kerasdrop:serving:worker_restarts_total"
RESTARTS_HELP = "Worker processes started to replace one that died."
# Test-only (tests/serving/process/test_supervision.py): with this variable set to 1, SIGUSR1 stops a
# process's gRPC event loop and SIGUSR2 its REST one, as a crash in either thread would.
CRASH_SIGNALS_VARIABLE = "KERASDROP_SERVE_TEST_CRASH_SIGNALS"


class ServingStoppedError(KerasdropError, RuntimeError):
    """The server stopped itself: a worker kept dying, or a protocol's thread ended. The message
    says which, and where to look."""


def describe_exit(returncode: int) -> str:
    """`Popen.returncode` in words: "exited with status 3", "was killed by signal 9 (SIGKILL)"."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown"
    return f"was killed by signal {-returncode} ({name})"


def ready_path(shared_dir: str, pid: int) -> pathlib.Path:
    """The file a worker creates once it serves (worker.py); the parent waits for it."""
    return pathlib.Path(shared_dir) / f"ready-{pid}"


@dataclasses.dataclass
class _Death:
    time: float
    index: int
    recovered: bool = False  # the worker's replacement serves


class Supervisor:
    """Runs worker processes 1..N-1 (the parent is worker 0) and replaces each that dies, with the
    same index: its column of the shared admission table is zeroed first, so that the requests it
    held in flight no longer count against --max-inflight.

    `spawn(index)` starts a worker (a `subprocess.Popen`); `stopping()` is true once the server
    stops (no replacement then: its workers are draining); `give_up(message)` is called once the
    workers died MAX_DEATHS times (see above), after which nothing more is replaced.
    """

    def __init__(
        self,
        spawn,
        *,
        shared_dir: str,
        counters,
        metrics,
        stopping,
        give_up,
        max_deaths: int = MAX_DEATHS,
        window: float = DEATH_WINDOW_SECONDS,
        poll_seconds: float = 0.2,
    ):
        self._spawn, self._shared_dir, self._counters, self._metrics = spawn, shared_dir, counters, metrics
        self._stopping, self._give_up = stopping, give_up
        self._max_deaths, self._window, self._poll_seconds = max_deaths, window, poll_seconds
        self._workers: dict = {}  # index -> its current Popen
        self._starting: set[int] = set()  # indices whose current worker does not serve yet
        self._deaths: list[_Death] = []
        self._lock = threading.Lock()  # orders a replacement against stop(): none starts after it
        self._stopped = threading.Event()
        self.failure: str | None = None

    def start(self, indices) -> Supervisor:
        self._metrics.count(RESTARTS_METRIC, RESTARTS_HELP, by=0)  # on the page from the start, at 0
        with self._lock:
            for index in indices:  # each in _workers at once: a failed spawn still stops the others
                self._workers[index] = self._spawn(index)
                self._starting.add(index)
        threading.Thread(target=self._watch, name="kerasdrop-supervisor", daemon=True).start()
        return self

    def workers(self) -> list:
        with self._lock:
            return list(self._workers.values())

    def wait_ready(self, seconds: float = 300) -> None:
        """Returns once every worker serves (a worker that died meanwhile was replaced, and its
        replacement serves), or once the server stops; raises ServingStoppedError if the workers
        kept dying. A worker still starting after `seconds` is logged and left to start."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.failure is not None:
                raise ServingStoppedError(self.failure)
            with self._lock:
                self._note_ready()
                if not self._starting or self._stopping():
                    return
            time.sleep(0.05)
        with self._lock:
            pids = [self._workers[index].pid for index in sorted(self._starting)]
        log.error("worker processes %s did not start within %g s", pids, seconds)

    def stop(self) -> list:
        """Stops replacing workers; returns the workers (for the caller to stop them)."""
        self._stopped.set()
        return self.workers()  # (taking the lock: a replacement being started is in the list)

    def _watch(self) -> None:
        while not self._stopped.wait(self._poll_seconds):
            with self._lock:
                if self._stopped.is_set() or self._stopping():
                    continue  # workers that exit now are stopping with the server, not dying
                self._note_ready()
                for index, worker in list(self._workers.items()):
                    if worker.poll() is not None and not self._replace(index, worker):
                        return

    def _note_ready(self) -> None:
        for index in list(self._starting):
            if ready_path(self._shared_dir, self._workers[index].pid).exists():
                self._starting.discard(index)
                for death in self._deaths:
                    death.recovered = death.recovered or death.index == index

    def _replace(self, index: int, worker) -> bool:
        """Reclaims what the dead `worker` held and starts its replacement; False when the workers
        died too often (or the replacement cannot start) and the server is to stop instead."""
        how = describe_exit(worker.returncode) + (" while starting" if index in self._starting else "")
        freed = self._counters.reclaim(index) if self._counters is not None else 0
        for path in (ready_path(self._shared_dir, worker.pid), peer_socket(self._shared_dir, worker.pid)):
            path.unlink(missing_ok=True)  # a dead peer's metrics socket would be asked at every scrape
        now = time.monotonic()
        self._deaths = [
            death for death in self._deaths if not (death.recovered and now - death.time > self._window)
        ]
        self._deaths.append(_Death(now, index))
        if len(self._deaths) >= self._max_deaths:
            hint = (
                " (with no such line, SIGKILL is often the kernel's out-of-memory killer: see dmesg)"
                if worker.returncode == -signal.SIGKILL
                else ""
            )
            return self._fail(
                f"Worker processes died {len(self._deaths)} times within {self._window:g} s (the last: worker "
                f"{index}, pid {worker.pid}, {how}); stopping the server. The cause is in the log lines of "
                f"kerasdrop.serve[worker {worker.pid}] above{hint}"
            )
        log.error(
            "worker %d (pid %d) %s; %d admission slot(s) it held are free again; starting a replacement "
            "(%d of %d deaths within %g s before the server stops)",
            index,
            worker.pid,
            how,
            freed,
            len(self._deaths),
            self._max_deaths,
            self._window,
        )
        try:
            self._workers[index] = self._spawn(index)
        except Exception as error:  # (out of file descriptors, processes): the server cannot heal itself
            del self._workers[index]
            return self._fail(
                f"Could not start a replacement for worker {index}, which {how}: "
                f"{type(error).__name__}: {error}; stopping the server"
            )
        self._starting.add(index)
        self._metrics.count(RESTARTS_METRIC, RESTARTS_HELP)
        return True

    def _fail(self, message: str) -> bool:
        self.failure = message
        self._give_up(message)
        return False


class Watchdog:
    """Calls `fail(message)` when one of `threads` (name -> a function returning the thread, or
    None before it exists) has ended while `stopping()` is false: a process whose REST or gRPC
    thread died must not go on serving the other protocol alone. If the process has not exited
    `exit_after` seconds later (its stop hung), it exits with status 3."""

    def __init__(self, threads: dict, stopping, fail, *, exit_after: float, interval: float = 0.5):
        self._threads, self._stopping, self._fail = threads, stopping, fail
        self._exit_after, self._interval = exit_after, interval
        self.timer = None  # the exit after a failure, once started

    def start(self) -> Watchdog:
        threading.Thread(target=self._watch, name="kerasdrop-watchdog", daemon=True).start()
        return self

    def _watch(self) -> None:
        while True:
            time.sleep(self._interval)
            for name, thread in self._threads.items():
                ended = (found := thread()) is not None and not found.is_alive()
                if self._stopping():  # checked after is_alive: a stop ends the threads after it is set
                    return
                if ended:
                    message = (
                        f"The {name} thread of process {os.getpid()} ended while serving; stopping the "
                        "process so that it does not serve the other protocol alone (see the error above)"
                    )
                    self.timer = threading.Timer(self._exit_after, os._exit, (3,))
                    self.timer.daemon = True
                    self.timer.start()
                    log.error("%s", message)
                    self._fail(message)
                    return


def install_crash_signals(loops: dict) -> None:
    """Test-only: with CRASH_SIGNALS_VARIABLE=1 in the environment, each signal in `loops`
    (signal -> a function returning an event loop) stops that loop, ending its thread as a crash
    would. Does nothing otherwise, or outside the main thread (where signals cannot be handled)."""
    if (
        os.environ.get(CRASH_SIGNALS_VARIABLE) != "1"
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    for signum, loop in loops.items():
        signal.signal(signum, lambda *_, loop=loop: loop().call_soon_threadsafe(loop().stop))
