"""A dead worker is replaced and what it held is freed; a process never serves one protocol alone;
a crash loop stops the server with one line; SIGTERM still drains and exits 0."""

import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kerasdrop.serving.models.admission import Admission
from kerasdrop.serving.models.metrics import Metrics
from kerasdrop.serving.process.shared_counters import MAX_WORKERS, SharedCounters
from kerasdrop.serving.process.supervisor import (
    RESTARTS_METRIC,
    ServingStoppedError,
    Supervisor,
    Watchdog,
    ready_path,
)
from tests.ports import free_port


def _wait_for(condition, seconds: float, what: str):
    """Polls `condition()` until it returns something true; fails naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds:g} s: {what}")


# --- the shared admission table: one column per worker ----------------------------------------------


def _hold_and_die(path, worker, held):
    """In another process, as worker `worker`: take two admission slots of model "m" and hang."""
    admission = Admission(max_inflight=3, shared=SharedCounters(path, worker=worker))
    slots = [admission.slot("m") for _ in range(2)]  # kept: a collected one would release its slot
    for slot in slots:
        slot.__enter__()
    held.set()
    time.sleep(120)


def test_a_dead_workers_admission_slots_are_reclaimed_and_the_limit_holds_over_the_sum(tmp_path):
    path = str(tmp_path / "admission")
    parent = Admission(max_inflight=3, shared=SharedCounters(path, create=True))
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    worker = context.Process(target=_hold_and_die, args=(path, 1, held))
    worker.start()
    try:
        assert held.wait(60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        assert parent.inflight("m") == 2, "a killed worker's slots stay taken until reclaimed"
        with parent.slot("m"):
            assert parent.shared.columns("m")[:3] == [1, 2, 0]
            with pytest.raises(Exception, match="--max-inflight 3"):
                with parent.slot("m"):
                    pass
        assert parent.shared.reclaim(1) == 2 and parent.inflight("m") == 0
        with parent.slot("m"), parent.slot("m"), parent.slot("m"):  # the full limit again
            assert parent.inflight("m") == 3
    finally:
        if worker.is_alive():
            worker.kill()
    with pytest.raises(
        ValueError,
        match=f"Invalid value received for worker. Expected an index from 0 to "
        f"{MAX_WORKERS - 1}. Received: worker={MAX_WORKERS}",
    ):
        SharedCounters(path, worker=MAX_WORKERS)


def test_workers_beyond_the_tables_columns_are_a_clear_error(tmp_path, capsys):
    from kerasdrop.cli import main

    assert main(["serve", "--repo", str(tmp_path), "--workers", str(MAX_WORKERS + 1)]) == 2
    assert (
        f"Invalid value received for --workers. Expected a number from 1 to {MAX_WORKERS}. "
        f"Received: {MAX_WORKERS + 1}"
    ) in capsys.readouterr().err


def test_a_server_refuses_more_workers_than_the_table_has_columns_before_binding_anything():
    from kerasdrop.errors import InvalidArgumentError
    from kerasdrop.serving.process.server import ServeConfig, Server

    with pytest.raises(
        InvalidArgumentError,
        match=f"Invalid value received for workers. Expected a number from 1 "
        f"to {MAX_WORKERS}. Received: workers={MAX_WORKERS + 1}",
    ):
        Server(ServeConfig(rest_port=0, grpc_port=0, workers=MAX_WORKERS + 1, models={})).start()


def test_the_restart_counter_is_summed_over_every_process_page():
    parent, worker = Metrics(), Metrics()

    class Peers:  # what MetricsPeers answers: the other processes' snapshots
        def __init__(self, *others):
            self.others = others

        def snapshots(self):
            return [other.snapshot() for other in self.others]

    parent.count(RESTARTS_METRIC, "Worker processes started to replace one that died.", by=0)
    parent.count(RESTARTS_METRIC, "Worker processes started to replace one that died.")
    parent.count(RESTARTS_METRIC, "Worker processes started to replace one that died.")
    worker.peers = Peers(parent)
    page = worker.render()  # whichever process answers the scrape
    assert f"# TYPE {RESTARTS_METRIC} counter\n{RESTARTS_METRIC} 2\n" in page
    worker.count(RESTARTS_METRIC, "Worker processes started to replace one that died.", by=3)
    assert f"{RESTARTS_METRIC} 5\n" in worker.render()
    assert RESTARTS_METRIC not in Metrics().render(), "a server without workers has no such counter"


# --- the supervisor, over stand-in worker processes ---------------------------------------------------

_STAND_IN = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1], f'ready-{os.getpid()}').touch(); time.sleep(120)"


def _supervisor(tmp_path, command, **options):
    counters = SharedCounters(str(tmp_path / "admission"), create=True)
    metrics, failures, stopping = Metrics(), [], threading.Event()
    spawned = []

    def spawn(index):
        spawned.append(subprocess.Popen([sys.executable, "-c", command, str(tmp_path)]))
        return spawned[-1]

    supervisor = Supervisor(
        spawn,
        shared_dir=str(tmp_path),
        counters=counters,
        metrics=metrics,
        stopping=stopping.is_set,
        give_up=failures.append,
        **options,
    )
    return supervisor, counters, metrics, failures, stopping, spawned


def _end(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def _restarts(metrics) -> str:
    return next(line for line in metrics.render().splitlines() if line.startswith(RESTARTS_METRIC + " "))


def test_a_dead_worker_is_replaced_with_its_index_and_its_column_zeroed(tmp_path):
    supervisor, counters, metrics, failures, stopping, spawned = _supervisor(tmp_path, _STAND_IN)
    try:
        supervisor.start([1, 2]).wait_ready(60)
        assert _restarts(metrics) == f"{RESTARTS_METRIC} 0"
        SharedCounters(str(tmp_path / "admission"), worker=2).add("m", 3)
        first = spawned[1]
        first.kill()
        _wait_for(lambda: len(spawned) == 3, 30, "a replacement is started")
        supervisor.wait_ready(60)
        assert counters.columns("m")[:3] == [0, 0, 0], "the dead worker's count is reclaimed"
        assert sorted(worker.pid for worker in supervisor.workers()) == sorted(
            [spawned[0].pid, spawned[2].pid]
        )
        assert not ready_path(str(tmp_path), first.pid).exists()
        assert _restarts(metrics) == f"{RESTARTS_METRIC} 1"
        stopping.set()  # the server stops: a worker that exits now is not replaced
        spawned[0].kill()
        time.sleep(1)
        assert len(spawned) == 3 and failures == []
    finally:
        _end(supervisor.stop())
        _end(spawned)


def test_workers_that_keep_dying_while_starting_stop_the_server_with_one_line(tmp_path):
    supervisor, _, metrics, failures, _, spawned = _supervisor(tmp_path, "import sys; sys.exit(3)")
    try:
        supervisor.start([1])
        with pytest.raises(ServingStoppedError) as raised:
            supervisor.wait_ready(120)
        message = str(raised.value)
        assert message.startswith(
            "Worker processes died 5 times within 60 s (the last: worker 1, pid "
            f"{spawned[-1].pid}, exited with status 3 while starting); stopping the server."
        )
        assert "\n" not in message and failures == [message]
        assert len(spawned) == 5 and _restarts(metrics) == f"{RESTARTS_METRIC} 4"
        time.sleep(1)
        assert len(spawned) == 5, "nothing is replaced after giving up"
    finally:
        _end(supervisor.stop())


def test_deaths_stop_counting_once_the_window_passed_and_a_replacement_serves(tmp_path):
    supervisor, _, metrics, failures, _, spawned = _supervisor(tmp_path, _STAND_IN, max_deaths=2, window=0.5)
    try:
        supervisor.start([1]).wait_ready(60)
        for restart in range(1, 4):  # one death at a time, each recovered and older than the window
            spawned[-1].kill()
            _wait_for(lambda restart=restart: len(spawned) == restart + 1, 30, "a replacement is started")
            supervisor.wait_ready(60)
            time.sleep(0.6)
        assert failures == [] and _restarts(metrics) == f"{RESTARTS_METRIC} 3"
    finally:
        _end(supervisor.stop())
        _end(spawned)


def test_the_watchdog_reports_a_protocol_thread_that_ended_unless_stopping():
    def ended():
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        return thread

    alive, stopping, failures = (
        threading.Thread(target=time.sleep, args=(30,), daemon=True),
        threading.Event(),
        [],
    )
    alive.start()
    watchdog = Watchdog(
        {"REST (uvicorn)": lambda: alive, "gRPC event loop": ended},
        stopping.is_set,
        failures.append,
        exit_after=3600,
        interval=0.05,
    ).start()
    try:
        _wait_for(lambda: failures, 10, "the watchdog reports the gRPC loop thread")
        assert failures == [
            f"The gRPC event loop thread of process {os.getpid()} ended while serving; stopping the "
            "process so that it does not serve the other protocol alone (see the error above)"
        ]
    finally:
        watchdog.timer.cancel()  # (its exit, had the process not stopped)
    stopping.set()
    quiet = Watchdog(
        {"gRPC event loop": ended}, stopping.is_set, failures.append, exit_after=3600, interval=0.05
    )
    quiet.start()
    time.sleep(0.5)
    assert len(failures) == 1 and quiet.timer is None, "a thread that ends while stopping is no failure"


# --- a real `kerasdrop serve --workers 2` --------------------------------------------------------------


@pytest.fixture(scope="module")
def sleepy_repo(tmp_path_factory):
    """A repository of two SavedModels, `sleepy` and `fast`, each answering y = 2x for a batch x
    after sleeping max(x) seconds (in tf.data's sleep op: no CPU spent), so that a test can hold
    requests in flight for as long as it needs."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops.testing import sleep

    class Sleepy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            # The op sleeps before each of get_single_element's two reads: half the time each.
            micros = tf.cast(tf.reduce_max(x) * 5e5, tf.int64)
            slept = tf.data.Dataset.from_tensors(x).apply(sleep(micros)).get_single_element()
            return {"y": slept * 2}

    repo = tmp_path_factory.mktemp("sleepy") / "export"
    module = Sleepy()
    for name in ("sleepy", "fast"):
        tf.saved_model.save(module, str(repo / name / "1"), signatures={"serving_default": module.serve})
    return repo


class _Served:
    """`kerasdrop serve` in a subprocess, its output in a file (a pipe nobody reads would fill)."""

    def __init__(self, repo, tmp_path, *extra, env=None):
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.log = tmp_path / f"serve-{self.rest_port}.log"
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kerasdrop.cli",
                    "serve",
                    "--repo",
                    str(repo),
                    "--backend",
                    "tf",
                    "--rest-port",
                    str(self.rest_port),
                    "--grpc-port",
                    str(self.grpc_port),
                    "--workers",
                    "2",
                    "--poll-seconds",
                    "0",
                    "--cheap-model-micros",
                    "0",
                    *extra,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        _wait_for(
            lambda: "kerasdrop serve: REST" in self.output() or self.process.poll() is not None,
            300,
            "the server starts",
        )
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text()

    def workers(self) -> dict[int, dict]:
        """The server's worker processes: pid -> the ServeConfig fields it was started with."""
        found = {}
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                command = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.process.pid and b"kerasdrop.serving.process.worker" in command:
                found[int(stat.parent.name)] = json.loads(
                    command[command.index(b"kerasdrop.serving.process.worker") + 1]
                )
        return found

    def serving_worker(self, other_than: int | None = None) -> tuple[int, dict]:
        """The one worker (a new one, when `other_than` names the old), once it serves."""

        def ready():
            for pid, config in self.workers().items():
                if pid != other_than and ready_path(config["shared_dir"], pid).exists():
                    return pid, config
            return None

        return _wait_for(ready, 180, f"a worker other than {other_than} serves\n{self.output()}")

    def predict(self, protocol: str, model: str, seconds: float = 0.0, timeout: float = 60):
        from kerasdrop.cli.client import ServingClient

        port = self.rest_port if protocol == "http" else self.grpc_port
        client = ServingClient(f"{protocol}://127.0.0.1:{port}", timeout=timeout)
        return client.predict(model, np.array([seconds], np.float32), input_name="x")["y"].tolist()

    def both_answer(self, times: int = 4) -> None:
        """REST and gRPC each answer `times` requests, each on a connection of its own (so the kernel
        spreads them over the processes)."""
        for _ in range(times):
            assert self.predict("http", "fast") == [0.0]
            assert self.predict("grpc", "fast") == [0.0]

    def metrics(self) -> str:
        import urllib.request

        url = f"http://127.0.0.1:{self.rest_port}/monitoring/prometheus/metrics"
        return urllib.request.urlopen(url, timeout=30).read().decode()

    def stop(self) -> int:
        """SIGTERM; the exit status, once the server and its workers are gone."""
        workers = list(self.workers())
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=90)
        _wait_for(lambda: not any(_running(pid) for pid in workers), 60, "the workers stop")
        return code

    def end(self) -> None:
        for pid in [*self.workers(), self.process.pid]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _answers(served) -> bool:
    try:
        return served.predict("http", "fast") == [0.0]
    except OSError:
        return False


def _hold(served, count: int, seconds: float) -> list[threading.Thread]:
    """`count` REST requests to `sleepy`, each in flight for `seconds` (or until its worker dies)."""

    def call():
        try:
            served.predict("http", "sleepy", seconds)
        except Exception:  # the ones in the killed worker lose their connection
            pass

    threads = [threading.Thread(target=call, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.slow
def test_a_killed_worker_is_replaced_its_slots_freed_and_sigterm_still_exits_0(sleepy_repo, tmp_path):
    from kerasdrop.cli.client import ServingClientError

    limit = 4
    served = _Served(sleepy_repo, tmp_path, "--max-inflight", str(limit))
    try:
        pid, config = served.serving_worker()
        table = SharedCounters(f"{config['shared_dir']}/admission")
        index = config["worker_index"]
        for _ in range(4):  # the kernel picks each connection's process: retry if none went to the worker
            holders = _hold(served, limit, 20)
            columns = _wait_for(
                lambda: (c := table.columns("sleepy")) and sum(c) == limit and c, 60, "every slot is held"
            )
            if columns[index] > 0:
                break
            for thread in holders:
                thread.join(60)
        assert columns[index] > 0, columns
        with pytest.raises(ServingClientError) as refused:  # the limit holds over both processes
            served.predict("http", "sleepy")
        assert refused.value.status == 429

        os.kill(pid, signal.SIGKILL)
        # Not "no longer running": a killed process's main thread turns zombie while its other
        # threads (TensorFlow has dozens) are still exiting, and its listening sockets stay open,
        # taking their share of new connections, until the last one has. Reaped (the server's
        # supervisor waits for it) means every thread is gone, and with them the sockets.
        _wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, "the server reaped the killed worker")
        # A connection the kernel had queued for the dead worker's socket before it closed is reset
        # (net.ipv4.tcp_migrate_req is off by default); from the first answer on, every one answers.
        _wait_for(lambda: _answers(served), 30, "the parent answers")
        served.both_answer()  # the parent serves both protocols meanwhile
        new_pid, new_config = served.serving_worker(other_than=pid)
        assert new_config["worker_index"] == index
        served.both_answer()
        assert table.columns("sleepy")[index] == 0, "the dead worker's slots are reclaimed"
        for thread in holders:  # the parent's own held requests end
            thread.join(60)
        _wait_for(lambda: table.get("sleepy") == 0, 30, "no slot is held")
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(served.predict("http", "sleepy", 2.0)))
            for _ in range(limit)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [[4.0]] * limit, "the full limit is available again"
        assert f"{RESTARTS_METRIC} 1\n" in served.metrics()
        assert f"worker {index} (pid {pid}) was killed by signal 9 (SIGKILL)" in served.output()
        assert served.stop() == 0
    finally:
        served.end()


@pytest.mark.slow
def test_a_worker_whose_grpc_loop_or_rest_thread_ends_is_replaced_and_sigterm_during_a_restart_exits_0(
    sleepy_repo, tmp_path
):
    served = _Served(sleepy_repo, tmp_path, env={"KERASDROP_SERVE_TEST_CRASH_SIGNALS": "1"})
    try:
        pid, _ = served.serving_worker()
        for crash, thread in ((signal.SIGUSR1, "gRPC event loop"), (signal.SIGUSR2, "REST (uvicorn)")):
            os.kill(pid, crash)
            new_pid, _ = served.serving_worker(other_than=pid)
            assert f"The {thread} thread of process {pid} ended while serving" in served.output()
            assert f"(pid {pid}) exited with status 1;" in served.output()
            served.both_answer()
            pid = new_pid
        assert f"{RESTARTS_METRIC} 2\n" in served.metrics()
        os.kill(pid, signal.SIGKILL)  # and SIGTERM while its replacement starts
        _wait_for(lambda: set(served.workers()) - {pid}, 30, "a replacement is started")
        assert served.stop() == 0
    finally:
        served.end()


@pytest.mark.slow
def test_a_worker_that_keeps_dying_stops_the_server_and_its_workers_with_one_line(sleepy_repo, tmp_path):
    served = _Served(sleepy_repo, tmp_path)
    try:
        killed = []

        def kill_the_worker():  # each as soon as it runs, most while they start
            for pid in served.workers():
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            return served.process.poll() is not None

        _wait_for(kill_the_worker, 120, "the server stops")
        assert served.process.returncode == 2
        assert len(killed) == 5, killed
        errors = [line for line in served.output().splitlines() if line.startswith("kerasdrop serve: error:")]
        assert errors == [
            f"kerasdrop serve: error: Worker processes died 5 times within 60 s (the last: worker 1, "
            f"pid {killed[-1]}, was killed by signal 9 (SIGKILL) while starting); stopping the server. "
            f"The cause is in the log lines of kerasdrop.serve[worker {killed[-1]}] above (with no "
            "such line, SIGKILL is often the kernel's out-of-memory killer: see dmesg)"
        ]
        assert served.output().count("starting a replacement") == 4
        assert not any(_running(pid) for pid in killed)
    finally:
        served.end()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the "crash"
def test_a_process_whose_rest_thread_ends_stops_both_protocols_and_says_why(sleepy_repo):
    from kerasdrop.serving.process.server import ServeConfig, Server

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    server = Server(
        ServeConfig(repo=str(sleepy_repo), rest_port=0, grpc_port=0, poll_seconds=0, cheap_model_micros=0)
    ).start()
    try:
        server._loop.call_soon_threadsafe(server._loop.stop)  # as a crash of the REST thread would end it
        started = time.monotonic()
        with pytest.raises(ServingStoppedError) as raised:
            server.serve_forever()
        assert str(raised.value).startswith(
            f"The REST (uvicorn) thread of process {os.getpid()} ended while serving"
        )
        assert time.monotonic() - started < 60
        assert not server.grpc.loop_thread.is_alive(), "gRPC stopped with it"
    finally:
        server.stop(grace=0)
        if server._watchdog.timer is not None:
            server._watchdog.timer.cancel()  # its exit, had this process not stopped: not pytest's
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
