"""Nothing is lost or left hanging: batching across a hot swap, deadlines, and SIGTERM under load."""

import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from kerasdrop.serving.errors import ServingError
from kerasdrop.serving.models.batching import Batcher

IMAGE = np.random.default_rng(3).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


def _slow_double(seconds):
    def run(inputs):
        time.sleep(seconds)
        return {"y": inputs["x"] * 2}

    return run


def test_stopping_a_batcher_answers_what_is_queued_and_later_submits():
    batcher = Batcher(_slow_double(0.2), max_batch_size=2, batch_timeout_micros=1000)
    results = [None] * 6
    threads = [
        threading.Thread(
            target=lambda i=i: results.__setitem__(
                i, batcher.submit({"x": np.array([float(i)])}, timeout=10)["y"][0]
            )
        )
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    batcher.stop()  # 6 queued, batches of 2: stop still runs them all
    for thread in threads:
        thread.join(timeout=10)
    assert results == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    started = time.perf_counter()
    assert batcher.submit({"x": np.array([4.0])}, timeout=10)["y"][0] == 8.0, "after stop: run directly"
    assert time.perf_counter() - started < 5


def test_a_request_past_its_deadline_gets_deadline_exceeded():
    batcher = Batcher(_slow_double(1.0), max_batch_size=1, batch_timeout_micros=0)
    blocker = threading.Thread(target=batcher.submit, args=({"x": np.array([1.0])},))
    blocker.start()
    time.sleep(0.1)
    started = time.perf_counter()
    with pytest.raises(ServingError) as raised:
        batcher.submit({"x": np.array([2.0])}, timeout=0.3)
    assert raised.value.code == "DEADLINE_EXCEEDED" and raised.value.status == 504
    assert time.perf_counter() - started < 0.9
    blocker.join()
    batcher.stop()


@pytest.mark.slow
def test_hot_swap_under_batching_answers_every_request(exported_repo, tmp_path):
    import shutil

    from kerasdrop.cli.client import ServingClient
    from tests.serving.conftest import running_server

    source, _ = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    with running_server(
        repo=str(repo),
        backend="onnx",
        poll_seconds=0.1,
        enable_batching=True,
        batch_timeout_micros=20000,
        cheap_model_micros=0,
    ) as server:
        client = ServingClient(f"grpc://127.0.0.1:{server.grpc_port}", timeout=10)
        answers, failures, stop = [], [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    client.predict("lenet5", IMAGE)
                    answers.append(1)
                except Exception as error:  # every failure is reported
                    failures.append(error)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        for version in (2, 3, 4):  # three swaps, each retiring a batcher with requests in it
            shutil.copytree(repo / "lenet5" / "1", repo / "lenet5" / f".tmp{version}")
            (repo / "lenet5" / f".tmp{version}").rename(repo / "lenet5" / str(version))
            deadline = time.monotonic() + 30
            while server.manager.loaded_versions().get("lenet5") != [version] and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert not any(worker.is_alive() for worker in workers), "a request hung"
        assert server.manager.loaded_versions() == {"lenet5": [4]}
        assert not failures, failures[:3]
        assert len(answers) > 20


def _start_server(repo, rest_port, grpc_port, *extra):
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdrop.cli",
            "serve",
            "--repo",
            str(repo),
            "--backend",
            "onnx",
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    while "kerasdrop serve: REST" not in (line := server.stdout.readline()):  # once every worker serves
        output.append(line)
        assert server.poll() is None, "".join(output) + server.stdout.read()
    return server


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests_on_both_protocols_and_exits_0(exported_repo):
    from kerasdrop.cli.client import ServingClient
    from tests.ports import free_port

    repo, _ = exported_repo
    rest_port, grpc_port = free_port(), free_port()
    # Each batch waits 1 s for company, so requests are surely in flight when SIGTERM comes.
    server = _start_server(
        repo,
        rest_port,
        grpc_port,
        "--enable-batching",
        "--max-batch-size",
        "64",
        "--batch-timeout-micros",
        "1000000",
        "--drain-seconds",
        "10",
        "--cheap-model-micros",
        "0",
    )
    try:
        results, lock = [], threading.Lock()

        def call(url):
            try:
                outcome = ServingClient(url, timeout=20).predict("lenet5", IMAGE)["class_ids"].shape
            except Exception as error:  # collected: the assertion below lists them
                outcome = error
            with lock:
                results.append(outcome)

        urls = [f"http://127.0.0.1:{rest_port}"] * 8 + [f"grpc://127.0.0.1:{grpc_port}"] * 8
        threads = [threading.Thread(target=call, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(OSError):  # no new connections while draining
            urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/lenet5", timeout=2)
        for thread in threads:
            thread.join(timeout=30)
        code = server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert [r for r in results if not isinstance(r, tuple)] == [], "every in-flight request is answered"
    assert len(results) == 16
    assert code == 0


def _children(pid: int) -> list[int]:
    import pathlib

    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _tcp_sockets(pid: int, port: int, state: str) -> set[int]:
    """The inodes of the IPv4 TCP sockets that process `pid` holds on local `port` in `state` (as
    /proc/net/tcp writes it: 0A listening, 01 established)."""
    import os
    import pathlib

    held = set()
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(int(target[8:-1]))
    found = set()
    for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state and int(fields[9]) in held:
            found.add(int(fields[9]))
    return found


@pytest.mark.slow
def test_workers_share_the_rest_port_and_stop_together(exported_repo):
    from kerasdrop.cli.client import ServingClient
    from kerasdrop.serving.process.ports import PortInUseError
    from kerasdrop.serving.process.server import ServeConfig, Server
    from tests.ports import free_port

    repo, _ = exported_repo
    rest_port, grpc_port = free_port(), free_port()
    server = _start_server(repo, rest_port, grpc_port, "--workers", "2")
    try:
        (worker,) = _children(server.pid)
        # Each process listens on a socket of its own in one SO_REUSEPORT group. With one socket shared,
        # the process that woke first accepted every pending connection: wrk's 16 all went to one
        # worker in 2 of 5 runs. Now the kernel spreads a burst of connections over both.
        listening = [_tcp_sockets(pid, rest_port, "0A") for pid in (server.pid, worker)]
        assert all(len(inodes) == 1 for inodes in listening) and listening[0] != listening[1], listening
        import socket

        burst = [socket.create_connection(("127.0.0.1", rest_port)) for _ in range(16)]
        try:
            time.sleep(0.5)
            accepted = [len(_tcp_sockets(pid, rest_port, "01")) for pid in (server.pid, worker)]
            assert sum(accepted) == 16 and min(accepted) > 0, (
                f"connections held by the two processes: {accepted}"
            )
        finally:
            for connection in burst:
                connection.close()
        client = ServingClient(f"http://127.0.0.1:{rest_port}", timeout=20)
        shapes = set()

        def load():  # concurrent connections, spread over both workers by the kernel
            for _ in range(5):
                shapes.add(client.predict("lenet5", IMAGE)["class_ids"].shape)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert shapes == {(1,)}
        for _ in range(6):  # a channel each: the kernel spreads them over both workers' gRPC listeners
            assert ServingClient(f"grpc://127.0.0.1:{grpc_port}").predict("lenet5", IMAGE)[
                "class_ids"
            ].shape == (1,)
        for _ in range(4):  # whichever worker answers the scrape, the page counts both workers' requests
            page = urllib.request.urlopen(
                f"http://127.0.0.1:{rest_port}/monitoring/prometheus/metrics"
            ).read()
            assert b'model_name="lenet5",version="1",API="rest:predict",status="OK"} 40\n' in page
            assert b'model_name="lenet5",version="1",API="grpc:predict",status="OK"} 6\n' in page
        # The workers share the gRPC port through SO_REUSEPORT; a second server must not join them.
        with pytest.raises(PortInUseError) as raised:
            Server(
                ServeConfig(repo=str(repo), backend="onnx", poll_seconds=0, rest_port=0, grpc_port=grpc_port)
            ).start()
        assert f"gRPC port {grpc_port} on 127.0.0.1 is already in use" in str(raised.value)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0
    time.sleep(0.5)
    assert (
        not pathlib_exists(f"/proc/{worker}/stat")
        or "Z" in open(f"/proc/{worker}/stat").read().split(")")[1][:3]
    )


def pathlib_exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def test_a_lone_request_is_not_held_back_for_company():
    lone = Batcher(_slow_double(0), max_batch_size=8, batch_timeout_micros=2_000_000, in_flight=lambda: 1)
    started = time.perf_counter()
    assert lone.submit({"x": np.array([3.0])}, timeout=10)["y"][0] == 6.0
    assert time.perf_counter() - started < 1.0, "alone in the process: run at once"
    lone.stop()
    expecting = Batcher(_slow_double(0), max_batch_size=8, batch_timeout_micros=500_000, in_flight=lambda: 2)
    started = time.perf_counter()
    assert expecting.submit({"x": np.array([3.0])}, timeout=10)["y"][0] == 6.0
    assert time.perf_counter() - started >= 0.45, (
        "another request is on its way: wait for it, up to the timeout"
    )
    expecting.stop()


def test_a_lone_request_runs_on_every_core_only_while_no_other_worker_has_requests(exported_repo, tmp_path):
    from kerasdrop.serving.models.admission import Admission
    from kerasdrop.serving.models.manager import ModelManager
    from kerasdrop.serving.process.shared_counters import SharedCounters

    repo, _ = exported_repo
    path = str(tmp_path / "admission")
    admission = Admission(max_inflight=8, shared=SharedCounters(path, create=True))
    manager = ModelManager(repo, backend="onnx", admission=admission)
    manager.sync()
    try:
        loaded = manager.resolve("lenet5")
        used = []

        class Recorder:
            def __init__(self, name):
                self.name = name

            def run(self, outputs, inputs):
                used.append(self.name)
                return [np.zeros((1, 10), np.float32) for _ in outputs]

        loaded.backend._alone_session, loaded.backend._session = (
            Recorder("every core"),
            Recorder("one thread"),
        )
        manager.run(loaded, "serving_default", {"images": IMAGE})
        other_worker = SharedCounters(path)  # another process's table: a request of its own in flight
        other_worker.add("lenet5", 1)
        manager.run(loaded, "serving_default", {"images": IMAGE})
        other_worker.add("lenet5", -1)
        manager.run(loaded, "serving_default", {"images": IMAGE})
        assert used == ["every core", "one thread", "every core"]
    finally:
        manager.stop()


def test_onnx_runs_a_lone_request_on_every_core_if_faster_and_concurrent_ones_on_one_each(
    exported_repo, monkeypatch
):
    import os

    from kerasdrop.serving.models import backends
    from kerasdrop.serving.models.backends import OnnxBackend

    repo, _ = exported_repo
    version = next((repo / "lenet5").iterdir())
    for parallel_faster in (True, False):
        monkeypatch.setattr(
            backends,
            "_median_seconds",
            lambda session, *_, faster=parallel_faster: (
                1.0 if session.get_session_options().intra_op_num_threads == 1 else (0.5 if faster else 0.95)
            ),
        )
        backend = OnnxBackend(version)
        assert backend._session.get_session_options().intra_op_num_threads == 1
        alone_threads = backend._alone_session.get_session_options().intra_op_num_threads
        assert alone_threads == ((os.cpu_count() or 1) if parallel_faster else 1)
    used, gate = [], threading.Barrier(2)

    class Recorder:
        def __init__(self, name, wait):
            self.name, self.wait = name, wait

        def run(self, outputs, inputs):
            used.append(self.name)
            if self.wait:
                gate.wait(5)  # both requests are running at once
            return [np.zeros(1) for _ in outputs]

    backend._alone_session = Recorder("alone", False)
    backend.run("serving_default", {"images": IMAGE})
    assert used == ["alone"]
    backend._alone_session, backend._session = Recorder("alone", True), Recorder("one thread", True)
    threads = [
        threading.Thread(target=backend.run, args=("serving_default", {"images": IMAGE})) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(used[1:]) == ["alone", "one thread"], "the second, concurrent request runs on one thread"
    backend._alone_session, backend._session = Recorder("alone", False), Recorder("one thread", False)
    backend.crowded = lambda: True  # others in flight in the server: parsed here, or run by another worker
    backend.run("serving_default", {"images": IMAGE})
    assert used[-1] == "one thread", "alone in this process but not on the machine: one thread"
