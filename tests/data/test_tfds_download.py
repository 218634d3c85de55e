"""`tfds:<name>` downloads and prepares on first use, through TFDS's real download path, offline.

A loopback HTTP mirror (tests/data/tfds_mirror.py) stands in for MNIST's server; a closed loopback
port and a dead proxy stand in for a machine without network; a killed process for an interrupted run.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kerasdrop.data import load_dataset
from tests.data.tfds_mirror import (
    TEST_EXAMPLES,
    TRAIN_EXAMPLES,
    closed_port_url,
    point_mnist_at,
    serve_mirror,
)

REPO = pathlib.Path(__file__).resolve().parents[2]


def _all_examples(pipeline):
    batches = list(pipeline.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _is_prepared(data_dir) -> bool:
    import tensorflow_datasets as tfds

    return tfds.builder("mnist", data_dir=str(data_dir)).is_prepared()


def test_first_use_downloads_and_prepares_then_reuses_the_prepared_copy(tmp_path, monkeypatch):
    with serve_mirror(tmp_path / "mirror") as (url, handler):
        point_mnist_at(url, monkeypatch.setattr)
        # The keras.datasets name is TFDS's mnist builder.
        data = load_dataset("mnist", data_dir=str(tmp_path / "tfds"), batch_size=100, validation_fraction=0.1)
        assert sorted(handler.requests) == sorted(
            [
                "/t10k-images-idx3-ubyte.gz",
                "/t10k-labels-idx1-ubyte.gz",
                "/train-images-idx3-ubyte.gz",
                "/train-labels-idx1-ubyte.gz",
            ]
        )
        info = data.info
        assert (info.num_train, info.num_validation, info.num_test) == (TRAIN_EXAMPLES - 6, 6, TEST_EXAMPLES)
        assert info.input_shape == (28, 28, 1) and info.pixel_range == (0.0, 255.0) and info.num_classes == 10
        images, labels = _all_examples(data.test)
        # Every pixel was written as 25 x the label: decoding and labels line up after the round trip.
        np.testing.assert_array_equal(
            images, np.broadcast_to(labels[:, None, None, None] * 25.0, images.shape)
        )
        assert _is_prepared(tmp_path / "tfds")
        handler.requests.clear()
        again = load_dataset("tfds:mnist", data_dir=str(tmp_path / "tfds"), offline=True, batch_size=100)
        assert handler.requests == [], "a prepared data set is not downloaded again"
        assert again.info.num_test == TEST_EXAMPLES


def test_a_refused_connection_is_one_line_naming_the_data_set_the_reason_and_the_ways_out(
    tmp_path, monkeypatch
):
    from kerasdrop.data.download import DatasetDownloadError

    url = closed_port_url()
    point_mnist_at(url, monkeypatch.setattr)
    started = time.monotonic()
    with pytest.raises(DatasetDownloadError) as raised:
        load_dataset("mnist", data_dir=str(tmp_path))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"TFDS data set 'mnist' is not prepared in {tmp_path} and downloading it failed: "
        f"the connection to {url[7:-1]} was refused."
    )
    assert "--data-dir DIR" in message and "`tfds build mnist --data_dir DIR`" in message
    assert time.monotonic() - started < 30, (
        "TFDS's 10 retries with backoff took 204 s here; kerasdrop allows 3"
    )
    assert not _is_prepared(tmp_path)


def test_an_unreachable_proxy_is_named_as_the_reason(tmp_path, monkeypatch):
    from kerasdrop.data.download import DatasetDownloadError

    proxy = closed_port_url()
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    point_mnist_at("http://mirror.invalid/", monkeypatch.setattr)
    with pytest.raises(
        DatasetDownloadError, match=rf"downloading it failed: the proxy {proxy} could not be reached"
    ):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_a_name_that_dns_cannot_resolve_is_named_as_the_reason(tmp_path, monkeypatch):
    import socket

    from kerasdrop.data.download import DatasetDownloadError

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # what a machine without a resolver answers
    point_mnist_at("http://storage.example/mnist/", monkeypatch.setattr)
    with pytest.raises(
        DatasetDownloadError, match="downloading it failed: DNS could not resolve storage.example."
    ):
        load_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "failure, reason",
    [
        (OSError(101, "Network is unreachable"), "no route to storage.example:80 (network unreachable)"),
        (TimeoutError("timed out"), "the connection to storage.example:80 timed out"),
    ],
    ids=["no-route", "timeout"],
)
def test_no_route_and_a_timeout_are_named_as_the_reason(tmp_path, monkeypatch, failure, reason):
    from urllib3.util import connection

    from kerasdrop.data.download import DatasetDownloadError

    def fail(*args, **kwargs):
        raise failure  # what the socket layer raises on a machine without a route out, or behind a dropping firewall

    monkeypatch.setattr(connection, "create_connection", fail)
    point_mnist_at("http://storage.example/mnist/", monkeypatch.setattr)
    with pytest.raises(DatasetDownloadError, match=re.escape(f"downloading it failed: {reason}.")):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_an_http_error_status_is_named_as_the_reason(tmp_path, monkeypatch):
    from kerasdrop.data.download import DatasetDownloadError

    with serve_mirror(tmp_path / "mirror") as (url, handler):
        point_mnist_at(url + "moved/", monkeypatch.setattr)  # the server answers 404 for these paths
        with pytest.raises(
            DatasetDownloadError,
            match=r"downloading it failed: Failed to get url http://127\.0\.0\.1:"
            r"\d+/moved/.*HTTP code: 404\.",
        ):
            load_dataset("mnist", data_dir=str(tmp_path / "tfds"))


def test_a_failure_that_is_not_the_network_keeps_its_own_error():
    from kerasdrop.data.download import network_failure_reason

    assert network_failure_reason(OSError("Not enough disk space. Needed: 21 MiB")) is None
    assert network_failure_reason(KeyError("image")) is None


def test_the_cli_reports_the_download_failure_in_one_line_and_leaves_no_run(tmp_path, monkeypatch, capsys):
    from kerasdrop.cli import main

    point_mnist_at(closed_port_url(), monkeypatch.setattr)
    out = tmp_path / "run"
    status = main(
        [
            "train",
            "--model",
            "simple_cnn",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert status == 2
    # `mnist` is the shipped recipe's `tfds:mnist`, so the run starts from models/simple_cnn_mnist.toml.
    assert "starting from the recipe models/simple_cnn_mnist.toml" in captured.out
    assert "expect: test accuracy about 0.9900 per the recipe's reference (keras-io" in captured.out
    error_lines = [line for line in captured.err.splitlines() if line.startswith("kerasdrop train: error:")]
    assert (
        len(error_lines) == 1
        and "TFDS data set 'mnist'" in error_lines[0]
        and "was refused" in error_lines[0]
    )
    assert not out.exists()


def test_offline_flag_forbids_the_download(tmp_path, monkeypatch, capsys):
    from kerasdrop.cli import main

    with serve_mirror(tmp_path / "mirror") as (url, handler):
        point_mnist_at(url, monkeypatch.setattr)
        status = main(
            [
                "train",
                "--model",
                "simple_cnn",
                "--dataset",
                "tfds:mnist",
                "--offline",
                "--no-recipe",
                "--data-dir",
                str(tmp_path / "tfds"),
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        assert status == 2 and handler.requests == []
    assert "--offline (data.offline) forbids downloading it" in capsys.readouterr().err


_CHILD = """
import sys, pathlib, time
sys.path.insert(0, {repo!r})
from tests.data.tfds_mirror import point_mnist_at
point_mnist_at({url!r})
if {stage!r} == "generate":
    from tensorflow_datasets.image_classification import mnist
    generate = mnist.MNIST._generate_examples
    def slow_generate(self, *args, **kwargs):
        for number, example in enumerate(generate(self, *args, **kwargs)):
            yield example
            if number == 3:
                pathlib.Path({marker!r}).touch()
                time.sleep(300)  # killed meanwhile
    mnist.MNIST._generate_examples = slow_generate
from kerasdrop.data import load_dataset
load_dataset("mnist", data_dir={data_dir!r})
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["download", "generate"])
def test_a_run_killed_mid_prepare_is_not_taken_for_prepared_data(tmp_path, monkeypatch, stage):
    from kerasdrop.data.tfds import DatasetNotPreparedError

    data_dir, marker = tmp_path / "tfds", tmp_path / "generating"
    stall = "/train-images-idx3-ubyte.gz" if stage == "download" else None
    with serve_mirror(tmp_path / "mirror", stall_path=stall) as (url, handler):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD.format(
                    repo=str(REPO), url=url, stage=stage, marker=str(marker), data_dir=str(data_dir)
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while not (handler.stalled.is_set() if stage == "download" else marker.exists()):
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the stage to interrupt"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stderr.close()
        left = [path.name for path in (data_dir / "mnist").iterdir()] if (data_dir / "mnist").exists() else []
        assert "3.0.1" not in left
        if stage == "generate":
            assert any(name.startswith("incomplete") for name in left), left  # killed inside the preparation
        else:  # the half file lies in a .tmp. directory, with no .INFO that would mark it downloaded
            downloaded = [path.name for path in (data_dir / "downloads" / "mnist").iterdir()]
            assert any("train-images" in name and ".tmp." in name for name in downloaded), downloaded
            assert not any("train-images" in name and name.endswith(".INFO") for name in downloaded), (
                downloaded
            )
        with pytest.raises(DatasetNotPreparedError):
            load_dataset("mnist", data_dir=str(data_dir), offline=True)

        handler.stall_path = None
        point_mnist_at(url, monkeypatch.setattr)
        data = load_dataset("mnist", data_dir=str(data_dir), batch_size=100)
    assert (data.info.num_train + data.info.num_validation, data.info.num_test) == (
        TRAIN_EXAMPLES,
        TEST_EXAMPLES,
    )
    images, labels = _all_examples(data.train)
    np.testing.assert_array_equal(images, np.broadcast_to(labels[:, None, None, None] * 25.0, images.shape))


def test_the_data_sets_page_shows_the_offline_error_kerasdrop_prints_today():
    from kerasdrop.data.download import download_failed_message

    page = (REPO / "docs" / "datasets.md").read_text()
    line = "kerasdrop train: error: " + download_failed_message(
        "mnist", "/tmp/tfds", "DNS could not resolve storage.googleapis.com"
    )
    assert line in page, (
        "docs/datasets.md's pasted offline error no longer matches the message; paste a fresh run"
    )
