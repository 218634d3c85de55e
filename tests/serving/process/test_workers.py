"""Several worker processes act as one server: one admission limit, one metrics page."""

import multiprocessing
import signal
import time

import pytest

from kerasdrop.serving.errors import ServingError
from kerasdrop.serving.models.admission import Admission
from kerasdrop.serving.models.metrics import LATENCY_BUCKETS_US, Metrics
from kerasdrop.serving.process.metrics_peers import MetricsPeers
from kerasdrop.serving.process.shared_counters import SharedCounters


def _hold_slots(path, count, held, release):
    """In another process: take `count` admission slots of model "m" and hold them."""
    admission = Admission(max_inflight=3, shared=SharedCounters(path))
    slots = [admission.slot("m") for _ in range(count)]
    for slot in slots:
        slot.__enter__()
    held.set()
    release.wait(30)
    for slot in slots:
        slot.__exit__(None, None, None)


def test_the_inflight_limit_holds_for_all_processes_together(tmp_path):
    path = str(tmp_path / "admission")
    mine = Admission(max_inflight=3, shared=SharedCounters(path, create=True))
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    other = context.Process(target=_hold_slots, args=(path, 2, held, release))
    other.start()
    try:
        assert held.wait(60)
        assert mine.inflight("m") == 2
        with mine.slot("m"):  # the third of 3
            with pytest.raises(ServingError) as raised:
                with mine.slot("m"):
                    pass
            assert raised.value.status == 429 and "--max-inflight 3" in raised.value.message
        with mine.slot("other-model"):  # a limit per model
            pass
    finally:
        release.set()
        other.join(30)
    assert mine.inflight("m") == 0, "the other process released its slots"
    with mine.slot("m"), mine.slot("m"), mine.slot("m"):
        assert mine.inflight("m") == 3


def test_shared_counters_keep_names_apart_and_refuse_past_the_limit(tmp_path):
    counters = SharedCounters(str(tmp_path / "c"), create=True)
    again = SharedCounters(str(tmp_path / "c"))
    names = [f"model-{i}" for i in range(200)] + ['quo"te', "ünï", ""]
    for index, name in enumerate(names):
        counters.add(name, index)
    assert [again.get(name) for name in names] == list(range(len(names)))
    assert again.add("model-5", 10, limit=12) == 5 and again.get("model-5") == 5, "refused: 15 > 12"
    assert again.add("model-5", 7, limit=12) == 5 and counters.get("model-5") == 12


def test_a_metrics_page_sums_every_workers_metrics(tmp_path):
    workers = [Metrics() for _ in range(3)]
    peers = [MetricsPeers(str(tmp_path), metrics) for metrics in workers]
    for peer in peers:
        peer.path = tmp_path / f"metrics-{id(peer)}.sock"  # one process here plays three
        peer.start()
    try:
        for index, metrics in enumerate(workers):
            for _ in range(index + 1):
                metrics.record_request("lenet5", 1, "rest:predict", "OK", 0.002)
            metrics.record_request('evil"} 1\n', "", "rest:predict", "NOT_FOUND", 0.001)
            metrics.record_batch("lenet5", 1, 4)
        for metrics in workers:  # whichever worker answers the scrape
            page = metrics.render()
            assert (
                ':tensorflow:serving:request_count{model_name="lenet5",version="1",API="rest:predict",'
                'status="OK"} 6' in page
            )
            assert (
                ':tensorflow:serving:request_latency_count{model_name="lenet5",version="1",'
                'API="rest:predict"} 6' in page
            )
            assert 'le="2500"} 6' in page
            assert (
                ':tensorflow:serving:batching_session:batch_size_count{model_name="lenet5",version="1"} 3'
                in page
            )
            assert 'model_name="evil\\"} 1\\n",version="",API="rest:predict",status="NOT_FOUND"} 3' in page
            # one merged series, escaped: a count line, the buckets with +Inf, _sum and _count
            assert page.count("evil") == 1 + len(LATENCY_BUCKETS_US) + 1 + 2
    finally:
        for peer in peers:
            peer.stop()
    assert "} 1\n" in workers[0].render() and 'status="OK"} 1' in workers[0].render(), (
        "alone again after stop"
    )


_ORPHANING_PARENT = """
import json, os, socket, subprocess, sys
from kerasdrop.serving.process.shared_counters import SharedCounters
shared = SharedCounters(sys.argv[2] + "/admission", create=True)  # as the first process makes it
rest = socket.socket(); rest.bind(("127.0.0.1", 0)); rest.listen()
probe = socket.socket(); probe.bind(("127.0.0.1", 0)); grpc_port = probe.getsockname()[1]; probe.close()
config = dict(repo=sys.argv[1], shared_dir=sys.argv[2], backend="onnx", rest_fd=rest.fileno(),
              rest_port=rest.getsockname()[1], grpc_port=grpc_port, poll_seconds=60)
command = [sys.executable, "-m", "kerasdrop.serving.process.worker", json.dumps(config), str(os.getpid())]
worker = subprocess.Popen(command, pass_fds=[rest.fileno()])
print(worker.pid, flush=True)
os._exit(0)  # dies while the worker still imports TensorFlow
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return False


def test_a_worker_whose_parent_dies_while_it_starts_does_not_serve_on_alone(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "repo").mkdir()
    log = tmp_path / "log.txt"
    with open(log, "w") as output:  # a file, not a pipe: waiting for a pipe's end would wait for the worker
        subprocess.run(
            [sys.executable, "-c", _ORPHANING_PARENT, str(tmp_path / "repo"), str(tmp_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=60,
            check=True,
        )
    pid = int(log.read_text().split()[0])
    try:
        deadline = time.monotonic() + 60
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _running(pid), "the orphaned worker kept running"
        assert not (tmp_path / f"ready-{pid}").exists(), "the orphaned worker started serving"
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
