"""`export(formats=...)` / `kerasdrop export --formats`: LiteRT and OpenVINO beside SavedModel and ONNX,
each written into staging, re-verified, published atomically and listed with its figures."""

import json
import sys

import numpy as np
import pytest

from kerasdrop import layout
from kerasdrop.cli import main
from kerasdrop.exporting import ExportRefusedError, export
from kerasdrop.exporting.formats import DEFAULT_FORMATS, FORMATS, check_formats

ALL_FORMATS = ["savedmodel", "onnx", "litert", "openvino"]


@pytest.fixture(scope="module")
def exported(small_model_file, tmp_path_factory):
    # mc_samples: the SavedModel then has a second, random signature the converters must not pick.
    return export(
        small_model_file,
        name="lenet5",
        repo=tmp_path_factory.mktemp("repo"),
        formats=ALL_FORMATS,
        mc_samples=4,
        models_config=None,
    )


def test_every_format_lands_in_the_version_directory(exported):
    names = {path.name for path in exported.path.iterdir()}
    assert {
        layout.SAVED_MODEL_FILE,
        layout.ONNX_FILE,
        layout.TFLITE_FILE,
        layout.OPENVINO_XML_FILE,
        layout.OPENVINO_BIN_FILE,
    } <= names
    assert list(exported.formats) == ALL_FORMATS


def test_litert_and_openvino_keep_the_contracts_names_and_a_dynamic_batch(exported):
    from kerasdrop.verification import runtimes

    images = np.random.default_rng(0).uniform(0, 16, (3, 8, 8, 1)).astype("float32")
    runner, specs = runtimes.litert_signature(exported.path / layout.TFLITE_FILE)
    compiled, ov_specs = runtimes.openvino_compiled(exported.path / layout.OPENVINO_XML_FILE)
    for specs_, run in (
        (specs, runtimes.litert_runtime(runner)),
        (ov_specs, runtimes.openvino_runtime(compiled)),
    ):
        assert [(spec.name, spec.row_shape, spec.batched) for spec in specs_] == [("images", (8, 8, 1), True)]
        outputs = run({"images": images})
        assert set(outputs) == {"probabilities", "class_ids"}
        assert outputs["probabilities"].shape == (3, 10)
        np.testing.assert_array_equal(outputs["class_ids"], outputs["probabilities"].argmax(-1))


def test_each_written_format_was_reverified_and_matches_keras(exported):
    locations = " ".join(finding.location for finding in exported.report.findings)
    for name in ("tflite model.tflite", "litert model.tflite", "openvino model.xml"):
        assert name in locations
    parity = [f.message for f in exported.report.findings if f.check == "parity" and f.severity == "info"]
    assert any(
        "litert" in message and "openvino" in message and "agree with keras" in message for message in parity
    )
    for name, figures in exported.formats.items():
        assert figures["verified"] and figures["within_tolerance"], name
        assert figures["max_difference_vs_keras"] <= 1e-5 and figures["bytes"] > 0


def test_verification_json_and_model_card_list_each_format_with_its_figures(exported):
    data = json.loads((exported.path / layout.VERIFICATION_FILE).read_text())
    assert list(data["formats"]) == ALL_FORMATS
    assert data["formats"]["litert"]["files"] == [layout.TFLITE_FILE]
    card = json.loads((exported.path / layout.MODEL_CARD_JSON).read_text())
    assert card["export"]["formats"] == ALL_FORMATS
    assert {layout.TFLITE_FILE, layout.OPENVINO_XML_FILE, layout.OPENVINO_BIN_FILE} <= set(
        card["export"]["files"]
    )
    assert card["export"]["verified_formats"]["openvino"]["max_difference_vs_keras"] <= 1e-5
    markdown = (exported.path / layout.MODEL_CARD_MARKDOWN).read_text()
    assert (
        "| litert | model.tflite | litert |" in markdown and "| openvino | model.xml, model.bin |" in markdown
    )


def test_verify_of_the_version_directory_checks_every_format_beside_the_saved_model(exported):
    from kerasdrop.verification import verify

    report = verify(exported.path)
    assert report.ok
    assert any(check.target.endswith(layout.TFLITE_FILE) for check in report.checks)
    assert any(check.target.endswith(layout.OPENVINO_XML_FILE) for check in report.checks)


def test_format_list_errors_name_the_supported_formats():
    with pytest.raises(
        ValueError,
        match="^Invalid value received for argument `formats`. Expected a comma-separated "
        "subset of savedmodel, onnx, litert, openvino. Received: formats='tflite'",
    ):
        check_formats(["tflite"])
    assert check_formats("savedmodel, litert,litert") == ("savedmodel", "litert")
    assert DEFAULT_FORMATS == ("savedmodel", "onnx") and set(DEFAULT_FORMATS) < set(FORMATS)


@pytest.mark.parametrize("fmt, module", [("litert", "ai_edge_litert.interpreter"), ("openvino", "openvino")])
def test_a_format_whose_runtime_is_missing_is_refused_before_any_work(
    small_model_file, tmp_path, monkeypatch, fmt, module
):
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it raises ImportError, as if not installed
    with pytest.raises(ValueError, match=rf"kerasdrop\[{fmt}\]"):
        export(small_model_file, name="m", repo=tmp_path / "repo", formats=["savedmodel", fmt])
    assert not (tmp_path / "repo").exists()


def test_a_written_file_that_fails_reverification_is_never_published(small_model_file, tmp_path, monkeypatch):
    """The LiteRT writer replaced by one that bakes a random op into model.tflite: the export refuses."""
    import tensorflow as tf

    from kerasdrop.exporting import litert

    def write_random(model, staging):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="images")])
        def serve(images):
            logits = tf.reshape(images * tf.random.uniform(tf.shape(images)), [-1, 64])[:, :10]
            probabilities = tf.nn.softmax(logits)
            return {"probabilities": probabilities, "class_ids": tf.argmax(probabilities, axis=-1)}

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], tf.Module()
        )
        (staging / layout.TFLITE_FILE).write_bytes(converter.convert())

    monkeypatch.setattr(litert, "write", write_random)
    with pytest.raises(ExportRefusedError) as refused:
        export(
            small_model_file,
            name="m",
            repo=tmp_path / "repo",
            formats=["savedmodel", "litert"],
            models_config=None,
        )
    assert any("random op RANDOM_UNIFORM" in finding.message for finding in refused.value.report.errors)
    assert any(f.check == "parity" and "litert" in f.location for f in refused.value.report.errors)
    assert not [path for path in (tmp_path / "repo" / "m").iterdir()]  # no version, no staging left


def test_cli_export_formats(small_model_file, tmp_path, capsys):
    repo = str(tmp_path / "export")
    assert (
        main(
            [
                "export",
                str(small_model_file),
                "--name",
                "m",
                "--repo",
                repo,
                "--formats",
                "savedmodel,litert",
                "--models-config",
                str(tmp_path / "models.config"),
            ]
        )
        == 0
    )
    assert sorted(path.name for path in (tmp_path / "export" / "m" / "1").glob("model.*")) == [
        layout.TFLITE_FILE
    ]
    capsys.readouterr()
    assert (
        main(
            ["export", str(small_model_file), "--name", "m", "--repo", repo, "--formats", "savedmodel,coreml"]
        )
        == 2
    )
    assert "savedmodel, onnx, litert, openvino" in capsys.readouterr().err
