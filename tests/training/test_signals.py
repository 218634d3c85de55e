"""`kerasdrop train` stopped by SIGINT, SIGTERM and SIGKILL at several points, then resumed: every epoch is
recorded exactly once, every file it left is whole, and the run ends where an uninterrupted one does."""

import json
import os
import pathlib
import random
import shlex
import signal
import subprocess
import sys
import time

import pytest

import kerasdrop
from tests.cli.test_train import FAST_FLAGS

EPOCHS = 20
FLAGS = ["--no-recipe", *FAST_FLAGS, "--steps-per-execution", "1", "--epochs", str(EPOCHS)]
REPOSITORY = pathlib.Path(kerasdrop.__file__).resolve().parents[1]


def _start(arguments):
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, "-m", "kerasdrop.cli", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _completed(out: pathlib.Path) -> int:
    try:
        return json.loads((out / "backup" / "state.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def _signal_after(process, out, epoch, number, delay):
    """Sends `number` `delay` s after the backup records `epoch`; returns (exit status, stderr)."""
    deadline = time.monotonic() + 120
    while _completed(out) < epoch and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(number)
    _, error = process.communicate(timeout=120)
    return process.returncode, error


@pytest.mark.slow
def test_signals_at_several_points_then_resume_record_every_epoch_once(tmp_path):
    from kerasdrop.training import train

    out = tmp_path / "run"
    randomness = random.Random(0)
    process = _start(["train", *FLAGS, "--out", str(out), "--quiet"])
    # (signal, after this many epochs, then a delay that lands mid-epoch or inside an epoch's writes)
    plan = [
        (signal.SIGTERM, 3, 0.0),
        (signal.SIGKILL, 8, randomness.uniform(0, 0.05)),
        (signal.SIGINT, 13, randomness.uniform(0, 0.05)),
    ]
    stopped = 0
    for number, epoch, delay in plan:
        status, error = _signal_after(process, out, epoch, number, delay)
        if status == 0:
            break  # finished before the signal: nothing left to interrupt
        stopped += 1
        if number == signal.SIGKILL:
            assert status == -signal.SIGKILL
        else:
            assert status == 128 + number, error
            (line,) = error.strip().splitlines()
            assert "Traceback" not in error
            command = shlex.split(line.split("continue with: ")[1])
            assert command[:4] == ["kerasdrop", "train", "--resume", "--out"], line
        process = _start(["train", "--resume", "--out", str(out), "--quiet"])
    if process.poll() is None or process.returncode is None:
        _, error = process.communicate(timeout=120)
        assert process.returncode == 0, error
    assert stopped >= 2, "the run finished before most signals: make its epochs longer"

    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(EPOCHS))
    csv_epochs = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert csv_epochs == [str(epoch) for epoch in range(EPOCHS)]
    resumed = json.loads((out / "metrics.json").read_text())
    assert len(resumed["resumed_after_epochs"]) == stopped
    assert not (out / "backup").exists()

    alone = train(out=tmp_path / "alone", recipe_or_kwargs=str(out / "recipe.toml"), verbose=0)
    # Within seed noise, not bit for bit: a resumed run's data order starts over (see docs/training-runs.md).
    assert resumed["test_accuracy"] == pytest.approx(alone.metrics["test_accuracy"], abs=0.05)
    assert resumed["epochs_completed"] == alone.metrics["epochs_completed"] == EPOCHS
