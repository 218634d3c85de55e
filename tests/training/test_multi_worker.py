"""Multi-worker training for real: two worker processes on loopback train one model to completion."""

import json
import os
import subprocess
import sys

import pytest

from kerasdrop.training.artifacts import RUN_FILES
from kerasdrop.training.distribute import is_chief
from tests.ports import free_port


@pytest.mark.parametrize(
    "config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_only_the_chief_writes(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert is_chief() is chief


@pytest.mark.slow
def test_two_local_workers_train_one_model(tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "kerasdrop.cli",
        "train",
        "--strategy",
        "multi_worker",
        "--model",
        "mlp",
        "--dataset",
        "synthetic",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--dense-units",
        "16",
        "--out",
        str(out),
    ]
    processes = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
        )
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    for index, process in enumerate(processes):
        assert process.returncode == 0, f"worker {index} failed:\n{outputs[index][-3000:]}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and metrics["status"] == "complete"
    assert sorted(path.name for path in out.iterdir()) == sorted(RUN_FILES)
    assert 'strategy = "multi_worker"' in (out / "recipe.toml").read_text()
    assert "run saved to" in outputs[0] and "the chief writes the run to" in outputs[1]
