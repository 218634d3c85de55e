"""`kerasdrop predict`: one line per image (file, row), any signature with its outputs shown."""

import re

import numpy as np
import pytest
from PIL import Image

from kerasdrop.cli import main
from tests.serving.conftest import running_server


@pytest.fixture(scope="module")
def server(exported_repo):
    repo, model = exported_repo
    with running_server(repo=repo) as server:
        yield server, model


def _inputs(tmp_path):
    rows = np.random.default_rng(1).uniform(0, 16, (3, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "rows.npy", rows)
    pixels = np.random.default_rng(2).integers(0, 17, (8, 8)).astype("uint8")
    Image.fromarray(pixels, mode="L").save(tmp_path / "digit.png")
    return rows, pixels.astype("float32").reshape(1, 8, 8, 1)


def test_every_row_of_an_npy_and_every_image_gets_its_own_line(server, tmp_path, capsys):
    server, model = server
    rows, png = _inputs(tmp_path)
    files = [str(tmp_path / "rows.npy"), str(tmp_path / "digit.png")]
    assert main(["predict", "--url", f"http://127.0.0.1:{server.rest_port}", "--model", "lenet5", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = np.argmax(model(np.concatenate([rows, png]), training=False), axis=-1)
    labels = [f"{files[0]}[0]", f"{files[0]}[1]", f"{files[0]}[2]", files[1]]
    assert len(lines) == 4
    for line, label, top in zip(lines, labels, expected):
        assert line.startswith(f"{label}: class {top} ("), line
        assert len(line.split("probabilities ")[1].split()) == 10


def test_signature_flag_calls_mc_dropout_and_shows_its_outputs(server, tmp_path, capsys):
    server, _ = server
    _inputs(tmp_path)
    for url in (f"http://127.0.0.1:{server.rest_port}", f"grpc://127.0.0.1:{server.grpc_port}"):
        assert main(["predict", "--url", url, "--model", "lenet5", "--signature", "mc_dropout",
                     str(tmp_path / "rows.npy")]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3
        for row, line in enumerate(lines):
            assert re.fullmatch(rf".*rows\.npy\[{row}\]: class \d \(\d\.\d{{4}}\)  mean( \d\.\d{{3}}){{10}}"
                                rf"  stddev( \d\.\d{{3}}){{10}}", line), line


def test_an_unknown_signature_lists_the_models_signatures(server, tmp_path, capsys):
    server, _ = server
    _inputs(tmp_path)
    assert main(["predict", "--url", f"http://127.0.0.1:{server.rest_port}", "--model", "lenet5",
                 "--signature", "mc_droput", str(tmp_path / "rows.npy")]) == 2
    error = capsys.readouterr().err
    assert "Expected one of the model's signatures: mc_dropout, serving_default. Received: 'mc_droput'" in error
