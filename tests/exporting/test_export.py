"""`kerasdrop export`: verified, TF Serving layout, warmup, models.config, atomic, mc_dropout, refusals."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import kerasdrop
from kerasdrop.cli import main
from kerasdrop.exporting import ExportRefusedError, export
from kerasdrop.exporting.warmup import read_warmup
from kerasdrop.verification import Report, UnusableInputError
from tests.verification import broken_models


@pytest.fixture(scope="module")
def exported(small_model_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    result = export(
        small_model_file,
        name="lenet5",
        repo=root / "export",
        mc_samples=16,
        models_config=root / "serve" / "models.config",
    )
    return result, root


def test_version_directory_has_tf_serving_layout(exported):
    result, root = exported
    assert result.path == root / "export" / "lenet5" / "1" and result.version == 1
    names = {path.name for path in result.path.iterdir()}
    assert {"saved_model.pb", "variables", "assets.extra", "model.onnx", "verification.json"} <= names
    assert not [p for p in (root / "export" / "lenet5").iterdir() if p.name.startswith(".staging")]


def test_signatures_inputs_and_outputs(exported):
    import tensorflow as tf

    result, _ = exported
    loaded = tf.saved_model.load(str(result.path))
    serving = loaded.signatures["serving_default"]
    assert list(serving.structured_input_signature[1]) == ["images"]
    assert serving.structured_input_signature[1]["images"].shape.as_list() == [None, 8, 8, 1]
    assert set(serving.structured_outputs) == {"probabilities", "class_ids"}
    images = np.random.default_rng(0).uniform(0, 16, (5, 8, 8, 1)).astype("float32")
    first = serving(images=tf.constant(images))
    second = serving(images=tf.constant(images))
    np.testing.assert_array_equal(first["probabilities"], second["probabilities"])
    np.testing.assert_array_equal(first["class_ids"], np.argmax(first["probabilities"], axis=-1))


def test_signature_method_is_tensorflow_serving_predict(exported):
    from kerasdrop.verification.graph import read_saved_model

    meta_graph = read_saved_model(exported[0].path)
    assert meta_graph.signature_def["serving_default"].method_name == "tensorflow/serving/predict"


def test_mc_dropout_signature_is_stochastic_and_default_is_not(exported):
    import tensorflow as tf

    result, _ = exported
    loaded = tf.saved_model.load(str(result.path))
    mc = loaded.signatures["mc_dropout"]
    assert set(mc.structured_outputs) == {"mean", "stddev"}
    images = tf.constant(np.random.default_rng(1).uniform(0, 16, (3, 8, 8, 1)).astype("float32"))
    first, second = mc(images=images), mc(images=images)
    assert first["mean"].shape == (3, 10) and first["stddev"].shape == (3, 10)
    assert not np.array_equal(first["mean"], second["mean"])
    assert float(tf.reduce_max(first["stddev"])) > 0
    np.testing.assert_allclose(tf.reduce_sum(first["mean"], axis=1), 1.0, rtol=1e-5)
    report = Report.from_dict(json.loads((result.path / "verification.json").read_text()))
    assert any(
        f.location == "signature mc_dropout" and "stochastic as intended" in f.message
        for f in report.findings
    )


def test_onnx_has_the_same_names_and_agrees(exported):
    import onnx
    import onnxruntime
    import tensorflow as tf

    result, _ = exported
    model = onnx.load(str(result.path / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["images"]
    assert {o.name for o in model.graph.output} == {"probabilities", "class_ids"}
    assert model.opset_import[0].version == 17
    session = onnxruntime.InferenceSession(
        str(result.path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    serving = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    for batch in (1, 9):
        images = np.random.default_rng(batch).uniform(0, 16, (batch, 8, 8, 1)).astype("float32")
        (probabilities,) = session.run(["probabilities"], {"images": images})
        np.testing.assert_allclose(
            probabilities, serving(images=tf.constant(images))["probabilities"], atol=1e-5
        )


def test_verification_json_records_every_check(exported):
    result, _ = exported
    report = json.loads((result.path / "verification.json").read_text())
    assert report["ok"] is True and report["target"] == str(result.path)
    assert {f["check"] for f in report["findings"]} == {"structure", "graph", "numerical", "parity"}
    assert report["tolerances"]["parity"] == {"atol": 1e-5, "rtol": 1e-4}


def test_warmup_file_is_prediction_log_records(exported):
    import tensorflow as tf

    result, _ = exported
    records = read_warmup(result.path / "assets.extra" / "tf_serving_warmup_requests")
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "predict_log"]
    request = records[0].predict_log.request
    assert request.model_spec.name == "lenet5" and request.model_spec.signature_name == "serving_default"
    images = tf.make_ndarray(request.inputs["images"])
    assert images.shape == (1, 8, 8, 1) and images.dtype == np.float32
    assert tf.make_ndarray(records[1].predict_log.request.inputs["images"]).shape == (8, 8, 8, 1)


def test_models_config_parses_with_tf_serving_protos(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    _, root = exported
    config = text_format.Parse(
        (root / "serve" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("lenet5", "/models/lenet5", "tensorflow")


def test_next_export_is_the_next_version_and_versions_are_never_overwritten(small_model_file, tmp_path):
    repo = tmp_path / "export"
    first = export(small_model_file, name="m", repo=repo, formats=["savedmodel"], models_config=None)
    second = export(small_model_file, name="m", repo=repo, formats=["savedmodel"], models_config=None)
    assert (first.version, second.version) == (1, 2)
    assert not (second.path / "model.onnx").exists()
    before = (first.path / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(ValueError, match="never overwritten"):
        export(small_model_file, name="m", repo=repo, version=1, models_config=None)
    assert (first.path / "saved_model.pb").stat().st_mtime_ns == before
    third = export(
        small_model_file, name="m", repo=repo, version=7, formats=["savedmodel"], models_config=None
    )
    assert third.path.name == "7"


@pytest.mark.parametrize(
    "case",
    ["dropout_pinned_to_training", "batch_norm_pinned_to_training", "gaussian_noise_pinned_to_training"],
)
def test_broken_models_are_refused_and_nothing_is_published(case, tmp_path):
    model = broken_models.KERAS_CASES[case]()
    with pytest.raises(ExportRefusedError) as refused:
        export(model, name="broken", repo=tmp_path / "export", models_config=tmp_path / "models.config")
    assert not refused.value.report.ok
    assert not (tmp_path / "export" / "broken").exists() or not any(
        (tmp_path / "export" / "broken").iterdir()
    )
    assert not (tmp_path / "models.config").exists()


def test_bad_export_arguments(small_model_file, tmp_path):
    with pytest.raises(ValueError, match="^Invalid value received for argument `name`"):
        export(small_model_file, name="../escape", repo=tmp_path)
    with pytest.raises(
        ValueError, match="^Invalid value received for argument `formats`.*subset of savedmodel, onnx"
    ):
        export(small_model_file, name="m", repo=tmp_path, formats=["tflite"])
    with pytest.raises(ValueError, match="including savedmodel"):
        export(small_model_file, name="m", repo=tmp_path, formats=["onnx"])
    with pytest.raises(ValueError, match="^Invalid value received for argument `mc_samples`"):
        export(small_model_file, name="m", repo=tmp_path, mc_samples=1)
    with pytest.raises(UnusableInputError, match="Model file not found"):
        export(tmp_path / "missing.keras", name="m", repo=tmp_path)


def test_cli_export_exit_codes_and_messages(small_model_file, tmp_path, capsys):
    repo, config = str(tmp_path / "export"), str(tmp_path / "models.config")
    assert (
        main(["export", str(small_model_file), "--name", "ok", "--repo", repo, "--models-config", config])
        == 0
    )
    out = capsys.readouterr().out
    assert "PASS" in out and f"published {repo}/ok/1/" in out
    broken_models.dropout_pinned_to_training().save(tmp_path / "broken.keras")
    assert (
        main(
            [
                "export",
                str(tmp_path / "broken.keras"),
                "--name",
                "bad",
                "--repo",
                repo,
                "--models-config",
                config,
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "refused" in captured.err
    assert "fc1_dropout" in captured.err and "call the layer without `training=True`" in captured.err
    assert main(["export", str(tmp_path / "nope.keras"), "--name", "x", "--repo", repo]) == 2


@pytest.mark.slow
def test_killed_export_never_leaves_a_visible_version(small_model_file, tmp_path):
    repo = tmp_path / "export"
    command = [
        sys.executable,
        "-m",
        "kerasdrop.cli",
        "export",
        str(small_model_file),
        "--name",
        "m",
        "--repo",
        str(repo),
        "--models-config",
        str(tmp_path / "models.config"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    model_dir = repo / "m"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        staging = (
            [p for p in model_dir.iterdir() if p.name.startswith(".staging")] if model_dir.is_dir() else []
        )
        if staging and any(staging[0].iterdir()):
            os.kill(process.pid, signal.SIGKILL)  # mid-export, with files half written
            break
        time.sleep(0.02)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert not [p.name for p in model_dir.iterdir() if p.name.isdigit()], "a version became visible"
    assert [p for p in model_dir.iterdir() if p.name.startswith(".staging")], "the staging directory is left"
    result = export(small_model_file, name="m", repo=repo, models_config=None)
    assert result.version == 1
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".staging")], (
        "stale staging is cleaned up"
    )


# MobileNetV2 without mc_samples: untrained, its activations vanish (~1e-12) before the head, so
# its dropout cannot change the outputs and the mc_dropout check rightly reports that.
@pytest.mark.parametrize(
    "name, options, mc_samples",
    [
        ("resnet18", {"stem": "cifar"}, 4),
        ("vgg11", {"batch_norm": True}, 4),
        ("keras_app:MobileNetV2", {}, None),
    ],
)
def test_zoo_models_with_batch_norm_export_without_findings(name, options, mc_samples, tmp_path):
    model = kerasdrop.create_model(name, num_classes=4, input_shape=(32, 32, 3), dense_units=(16,), **options)
    result = export(model, name="zoo", repo=tmp_path, mc_samples=mc_samples, models_config=None)
    assert result.report.ok and not [f for f in result.report.findings if f.severity == "warning"]
    assert (result.path / "model.onnx").is_file()


def test_the_same_model_object_exports_twice(tmp_path):
    # The mc_dropout clone shares the model's layers; its training=True calls must not count as the model's.
    model = kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), dense_units=(8,))
    first = export(model, name="twice", repo=tmp_path, mc_samples=4, models_config=None)
    second = export(model, name="twice", repo=tmp_path, mc_samples=4, models_config=None)
    assert (first.version, second.version) == (1, 2) and second.report.ok
