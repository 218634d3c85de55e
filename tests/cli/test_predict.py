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
    """Three 0..16 rows (the digits models' units) in a .npy, and a 0..255 PNG with the model's view of it."""
    rows = np.random.default_rng(1).uniform(0, 16, (3, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "rows.npy", rows)
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8)).astype("uint8")
    Image.fromarray(pixels, mode="L").save(tmp_path / "digit.png")
    return rows, pixels.astype("float32").reshape(1, 8, 8, 1) * (16 / 255)


def test_every_row_of_an_npy_and_every_image_gets_its_own_line(server, exported_repo, tmp_path, capsys):
    server, model = server
    rows, png = _inputs(tmp_path)
    files = [str(tmp_path / "rows.npy"), str(tmp_path / "digit.png")]
    assert (
        main(
            [
                "predict",
                "--url",
                f"http://127.0.0.1:{server.rest_port}",
                "--model",
                "lenet5",
                "--repo",
                str(exported_repo[0]),
                *files,
            ]
        )
        == 0
    )
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
        assert (
            main(
                [
                    "predict",
                    "--url",
                    url,
                    "--model",
                    "lenet5",
                    "--signature",
                    "mc_dropout",
                    str(tmp_path / "rows.npy"),
                ]
            )
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3
        for row, line in enumerate(lines):
            assert re.fullmatch(
                rf".*rows\.npy\[{row}\]: class \d \(\d\.\d{{4}}\)  mean( \d\.\d{{3}}){{10}}"
                rf"  stddev( \d\.\d{{3}}){{10}}",
                line,
            ), line


def test_an_unknown_signature_lists_the_models_signatures(server, tmp_path, capsys):
    server, _ = server
    _inputs(tmp_path)
    assert (
        main(
            [
                "predict",
                "--url",
                f"http://127.0.0.1:{server.rest_port}",
                "--model",
                "lenet5",
                "--signature",
                "mc_droput",
                str(tmp_path / "rows.npy"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert (
        "Expected one of the model's signatures: mc_dropout, serving_default. Received: 'mc_droput'" in error
    )


def _digit_files(tmp_path):
    """One 8x8 digit as the digits data set holds it (0..16 .npy) and as a user saves it (0..255 PNG)."""
    from sklearn.datasets import load_digits

    digit = load_digits().images[0].astype("float32")  # a 0, values 0..16
    np.save(tmp_path / "d0.npy", digit.reshape(8, 8, 1))
    Image.fromarray(np.round(digit * (255 / 16)).astype("uint8"), mode="L").save(tmp_path / "d0.png")
    return str(tmp_path / "d0.npy"), str(tmp_path / "d0.png")


def _top(line):
    return re.search(r"class (\d) \((\d\.\d{4})\)", line).groups()


def test_a_png_and_the_npy_of_the_same_digit_get_the_same_score(server, exported_repo, tmp_path, capsys):
    server, _ = server
    npy, png = _digit_files(tmp_path)
    assert (
        main(
            [
                "predict",
                "--url",
                f"http://127.0.0.1:{server.rest_port}",
                "--model",
                "lenet5",
                "--repo",
                str(exported_repo[0]),
                npy,
                png,
            ]
        )
        == 0
    )
    from_npy, from_png = capsys.readouterr().out.splitlines()
    assert _top(from_npy)[0] == _top(from_png)[0]
    assert abs(float(_top(from_npy)[1]) - float(_top(from_png)[1])) < 2e-3, (from_npy, from_png)


def test_an_image_file_for_a_model_of_unknown_range_is_refused_with_a_hint(server, tmp_path, capsys):
    server, _ = server
    _, png = _digit_files(tmp_path)
    assert (
        main(
            [
                "predict",
                "--url",
                f"http://127.0.0.1:{server.rest_port}",
                "--model",
                "lenet5",
                "--repo",
                str(tmp_path / "elsewhere"),
                png,
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "the input range of 'lenet5' version 1 is unknown" in error and "--input-range LOW,HIGH" in error


def test_input_range_flag_sends_the_files_pixels_in_the_range_given(server, tmp_path, capsys):
    server, model = server
    _, png = _digit_files(tmp_path)
    assert (
        main(
            [
                "predict",
                "--url",
                f"http://127.0.0.1:{server.rest_port}",
                "--model",
                "lenet5",
                "--input-range",
                "0,255",
                png,
            ]
        )
        == 0
    )
    raw = np.asarray(Image.open(png), dtype="float32").reshape(1, 8, 8, 1)
    expected = np.asarray(model(raw, training=False))[0]
    top = int(np.argmax(expected))
    assert capsys.readouterr().out.startswith(f"{png}: class {top} ({expected[top]:.4f})")


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Version 1 exported with --image-bytes --mc-samples 10, version 2 plain: the issue's repository."""
    import keras

    import kerasdrop
    from kerasdrop.exporting import export

    keras.utils.set_random_seed(7)
    repo = tmp_path_factory.mktemp("two") / "export"
    models = []
    for version, options in ((1, {"image_bytes": True, "mc_samples": 10}), (2, {})):
        model = kerasdrop.create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
        export(model, name="lenet5", repo=repo, version=version, models_config=None, **options)
        models.append(model)
    with running_server(repo=repo, version_policy="all") as server:
        yield server, repo, models


def test_version_flag_uses_that_versions_signatures(two_versions, tmp_path, capsys):
    server, repo, (first, second) = two_versions
    npy, png = _digit_files(tmp_path)
    url = f"http://127.0.0.1:{server.rest_port}"
    # Version 1 has serving_bytes: the PNG's own bytes go there, decoded and scaled in the graph.
    assert (
        main(["predict", "--url", url, "--model", "lenet5", "--version", "1", "--repo", str(repo), png]) == 0
    )
    digit = np.load(npy).reshape(1, 8, 8, 1)
    expected = np.asarray(first(digit, training=False))[0]
    top, score = _top(capsys.readouterr().out)
    assert int(top) == int(np.argmax(expected)) and abs(float(score) - expected.max()) < 2e-3
    # Its mc_dropout signature is found, although the latest version (2) has none.
    for address in (url, f"grpc://127.0.0.1:{server.grpc_port}"):
        assert (
            main(
                [
                    "predict",
                    "--url",
                    address,
                    "--model",
                    "lenet5",
                    "--version",
                    "1",
                    "--signature",
                    "mc_dropout",
                    npy,
                ]
            )
            == 0
        )
        assert " stddev " in capsys.readouterr().out
    # Without --version: the latest (2), which has neither.
    assert main(["predict", "--url", url, "--model", "lenet5", "--signature", "mc_dropout", npy]) == 2
    assert "Expected one of the model's signatures: serving_default" in capsys.readouterr().err


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A run of an MLP on a blue/green/red image folder, exported: `(repo, version directory, a red PNG)`."""
    from kerasdrop.exporting import export
    from kerasdrop.training import train

    root = tmp_path_factory.mktemp("colours")
    for name, colour in {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}.items():
        (root / "images" / name).mkdir(parents=True)
        for index in range(12):
            Image.new("RGB", (8, 8), colour).save(root / "images" / name / f"{index}.png")
    run = train(
        {
            "model": "mlp",
            "dataset": f"folder:{root / 'images'}",
            "epochs": 1,
            "batch_size": 8,
            "dense_units": [8],
        },
        out=root / "run",
        verbose=0,
    )
    result = export(
        str(run.directory / "model.keras"), name="colours", repo=root / "export", models_config=None
    )
    return root / "export", result.path, root / "images" / "red" / "0.png"


def test_export_records_class_names_and_predict_prints_them(colours, capsys):
    import json

    from kerasdrop.layout import LABELS_PATH, MODEL_CARD_JSON

    repo, version_dir, red = colours
    assert (version_dir / LABELS_PATH).read_text() == "blue\ngreen\nred\n"
    assert json.loads((version_dir / MODEL_CARD_JSON).read_text())["input"]["pixel_range"] == [0.0, 255.0]
    with running_server(repo=repo) as server:
        assert (
            main(
                [
                    "predict",
                    "--url",
                    f"http://127.0.0.1:{server.rest_port}",
                    "--model",
                    "colours",
                    "--repo",
                    str(repo),
                    str(red),
                ]
            )
            == 0
        )
    line = capsys.readouterr().out
    assert re.search(r": class (\d) \((blue|green|red)\) \d\.\d{4}  probabilities", line), line
    top, name = re.search(r"class (\d) \((\w+)\)", line).groups()
    assert ["blue", "green", "red"][int(top)] == name
