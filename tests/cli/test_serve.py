"""`kerasdrop serve` and `kerasdrop predict` as a user runs them: separate processes on loopback."""

import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.ports import free_port


@pytest.mark.slow
def test_serve_predict_and_graceful_shutdown(exported_repo, tmp_path):
    repo, model = exported_repo
    rest_port, grpc_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdrop.cli",
            "serve",
            "--repo",
            str(repo),
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/lenet5", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.3)
        image = np.random.default_rng(0).uniform(0, 16, (8, 8, 1)).astype("float32")
        np.save(tmp_path / "digit.npy", image)
        expected = int(np.argmax(model(image[None], training=False)))
        for url in (f"http://127.0.0.1:{rest_port}", f"grpc://127.0.0.1:{grpc_port}"):
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kerasdrop.cli",
                    "predict",
                    "--url",
                    url,
                    "--model",
                    "lenet5",
                    str(tmp_path / "digit.npy"),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert f"digit.npy: class {expected} (" in result.stdout
        missing = subprocess.run(
            [
                sys.executable,
                "-m",
                "kerasdrop.cli",
                "predict",
                "--url",
                f"http://127.0.0.1:{rest_port}",
                "--model",
                "nope",
                str(tmp_path / "digit.npy"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert missing.returncode == 1 and "404" in missing.stderr
        assert "Could not find any versions of model nope (served: lenet5)" in missing.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, "SIGTERM shuts the server down cleanly"


def test_serve_refuses_a_missing_repository(tmp_path, capsys):
    from kerasdrop.cli import main

    assert main(["serve", "--repo", str(tmp_path / "none")]) == 2
    assert "does not exist. Export a model first" in capsys.readouterr().err


def test_bad_version_policy_is_a_clear_error(tmp_path, capsys):
    from kerasdrop.cli import main

    tmp_path.mkdir(exist_ok=True)
    assert main(["serve", "--repo", str(tmp_path), "--version-policy", "newest"]) == 2
    assert "Expected latest, latest:N, all or specific:1,2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--cheap-model-micros", "-1", "0 or a positive number"),
        ("--max-inflight", "0", "a positive number"),
        ("--workers", "0", "a positive number"),
    ],
)
def test_a_limit_out_of_range_is_a_clear_error_before_anything_starts(
    tmp_path, capsys, flag, value, expected
):
    from kerasdrop.cli import main

    assert main(["serve", "--repo", str(tmp_path), flag, value]) == 2
    assert (
        f"Invalid value received for {flag}. Expected {expected}. Received: {value}"
        in capsys.readouterr().err
    )
