"""`kerasdrop serve`'s default backend (`auto`): model.onnx where the export proved its parity, the
SavedModel otherwise, and a start line that says which backend each model got and why."""

import json
import shutil

import pytest

from kerasdrop.layout import ONNX_FILE, VERIFICATION_FILE
from kerasdrop.serving.models.backends import (
    AUTO,
    DEFAULT_BACKEND,
    choose_backend,
    load_backend,
)
from tests.serving.conftest import running_server


@pytest.fixture(scope="module")
def plain_version(tmp_path_factory):
    """One exported lenet5 version with serving_default only (no mc_dropout), SavedModel and ONNX."""
    import keras

    import kerasdrop
    from kerasdrop.exporting import export

    keras.utils.set_random_seed(3)
    model = kerasdrop.create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    return export(
        model, name="lenet5", repo=tmp_path_factory.mktemp("repo") / "export", models_config=None
    ).path


def _copy(version_dir, tmp_path):
    copy = tmp_path / "lenet5" / "1"
    shutil.copytree(version_dir, copy)
    return copy


def test_the_cli_default_is_auto():
    from kerasdrop.cli.serving import DEFAULT_BACKEND as cli_default
    from kerasdrop.serving.process.server import ServeConfig

    assert DEFAULT_BACKEND == AUTO and cli_default == AUTO and ServeConfig().backend == AUTO


@pytest.mark.slow
def test_auto_serves_onnx_when_the_export_proved_its_parity(plain_version):
    backend, why = choose_backend(plain_version)
    assert backend == "onnx" and "verified at parity" in why
    loaded = load_backend(AUTO, plain_version)
    assert loaded.name == "onnx" and loaded.chosen == why


@pytest.mark.slow
@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda d: (d / ONNX_FILE).unlink(), f"no {ONNX_FILE}"),
        (lambda d: (d / VERIFICATION_FILE).unlink(), f"no {VERIFICATION_FILE} proves"),
        (lambda d: (d / VERIFICATION_FILE).write_text("{not json"), "cannot be read"),
        (
            lambda d: (d / VERIFICATION_FILE).write_text(
                json.dumps({**json.loads((d / VERIFICATION_FILE).read_text()), "ok": False})
            ),
            "does not report a pass",
        ),
        (
            lambda d: (d / VERIFICATION_FILE).write_text(
                json.dumps({**json.loads((d / VERIFICATION_FILE).read_text()), "checks": []})
            ),
            "records no parity check",
        ),
    ],
)
def test_auto_falls_back_to_the_savedmodel_without_proof(plain_version, tmp_path, spoil, expected):
    version = _copy(plain_version, tmp_path)
    spoil(version)
    backend, why = choose_backend(version)
    assert backend == "tf" and expected in why
    loaded = load_backend(AUTO, version)
    assert loaded.name == "tf" and loaded.chosen == why


@pytest.mark.slow
def test_auto_keeps_tensorflow_for_signatures_onnx_does_not_serve(exported_repo):
    repo, _ = exported_repo  # exported with mc_dropout, verified, with model.onnx
    backend, why = choose_backend(repo / "lenet5" / "1")
    assert backend == "tf" and "mc_dropout" in why


def test_an_explicit_backend_says_it_was_asked_for(shared_testdata):
    loaded = load_backend("tf", shared_testdata / "saved_model_half_plus_two_cpu" / "00000123")
    assert loaded.chosen == "--backend tf"


@pytest.mark.slow
def test_the_start_line_names_each_models_backend_and_why(plain_version, exported_repo, tmp_path):
    from kerasdrop.cli.serving import _backends_line

    models = {"plain": plain_version.parent, "mc": exported_repo[0] / "lenet5"}
    with running_server(models=models) as server:
        line = _backends_line(server, AUTO)
    assert line.startswith(
        "backends mc: tf (signatures mc_dropout run only in TensorFlow), plain: onnx (model.onnx "
        "verified at parity"
    ), line
