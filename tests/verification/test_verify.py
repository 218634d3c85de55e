"""The verifier catches every broken model in every format, and passes every zoo model."""

import json

import numpy as np
import pytest

import kerasdrop
from kerasdrop.cli import main
from kerasdrop.verification import UnusableInputError, verify
from kerasdrop.verification.numerical import inference_twin
from tests.verification import broken_models


def _errors(report, check=None):
    return [f for f in report.errors if check is None or f.check == check]


@pytest.mark.parametrize("case", sorted(broken_models.KERAS_CASES))
def test_broken_keras_models_are_caught(case):
    model = broken_models.KERAS_CASES[case]()
    report = verify(model)
    assert not report.ok, report.to_json()
    assert report.exit_code == 1


def test_pinned_dropout_is_named_with_the_fix():
    report = verify(broken_models.dropout_pinned_to_training())
    (finding,) = _errors(report, "structure")
    assert finding.location == "fc1_dropout"
    assert "training=True" in finding.message
    assert "call the layer without `training=True`" in finding.action and "mc_dropout" in finding.action


def test_pinned_batch_norm_is_named():
    report = verify(broken_models.batch_norm_pinned_to_training())
    assert [f.location for f in _errors(report, "structure")] == ["fc1_bn"]
    # model(x) (how model.export traces it) uses the batch's statistics: an error for `verify`.
    assert any("batch dependent" in f.message for f in _errors(report, "numerical"))


def test_custom_layer_that_ignores_training_is_caught_by_structure_and_numerically():
    report = verify(broken_models.custom_layer_always_dropping())
    assert any(
        f.location == "always_dropout" and "takes no `training` argument" in f.message
        for f in _errors(report, "structure")
    )
    assert any("inference is random" in f.message for f in _errors(report, "numerical"))


def test_augmentation_layer_at_its_default_is_an_error_for_verify():
    report = verify(broken_models.augmentation_inside())
    assert any(f.location == "flip" and "model.export" in f.message for f in _errors(report, "structure"))
    assert any("without training" in f.location for f in _errors(report, "numerical")), (
        "model(x) must be random"
    )
    assert report.exit_code == 1


@pytest.mark.parametrize("case", ["dropout_pinned_to_training", "batch_norm_pinned_to_training"])
def test_model_export_of_a_broken_model_is_caught_in_the_saved_model(case, tmp_path):
    model = broken_models.KERAS_CASES[case]()
    model.export(tmp_path / "sm", verbose=False)  # what users do by hand: traces without training
    report = verify(tmp_path / "sm")
    graph_errors = _errors(report, "graph")
    assert graph_errors, report.to_json()
    if case == "dropout_pinned_to_training":
        assert any("random op StatelessRandom" in f.message for f in graph_errors)
    else:
        assert any("AssignVariableOp writes a variable while serving" in f.message for f in graph_errors)
        assert any("batch dependent" in f.message for f in _errors(report, "numerical"))


def test_augmentation_left_active_by_model_export_is_caught(tmp_path):
    broken_models.augmentation_inside().export(tmp_path / "sm", verbose=False)
    report = verify(tmp_path / "sm")
    assert any("random op" in f.message for f in _errors(report, "graph"))


def test_fixed_mask_passes_repeat_calls_but_not_the_graph_scan(tmp_path):
    broken_models.fixed_mask_saved_model(tmp_path / "sm")
    report = verify(tmp_path / "sm")
    assert any("repeatable" in f.message for f in report.findings if f.severity == "info"), (
        "the fixed mask gives identical repeat calls"
    )
    assert any(
        "stateless" in f.message and "StatelessRandomUniformV2" in f.message for f in _errors(report, "graph")
    )


@pytest.mark.parametrize(
    "kwargs, caught, message",
    [
        (dict(random_op=True), True, "random op RandomUniformLike"),
        (dict(dropout_training_mode="input"), True, "training_mode a runtime input"),
        (dict(dropout_training_mode=True), True, "training_mode constant true"),
        (dict(dropout_training_mode=False), False, "no random op"),
        (dict(), False, "no random op"),
    ],
)
def test_onnx_graphs(tmp_path, kwargs, caught, message):
    path = tmp_path / "model.onnx"
    broken_models.onnx_model(path, **kwargs)
    report = verify(path) if kwargs.get("dropout_training_mode") != "input" else None
    if report is None:
        # Two inputs: only the graph scan applies (the numerical check needs one float input).
        report = verify(path)
    assert report.ok is (not caught), report.to_json()
    assert any(message in f.message for f in report.findings)


def test_onnx_runtime_alone_cannot_reveal_training_mode_dropout(tmp_path):
    import onnxruntime

    path = tmp_path / "model.onnx"
    broken_models.onnx_model(path, dropout_training_mode=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = np.ones((4, 8), dtype="float32")
    first, second = (session.run(None, {"images": images})[0] for _ in range(2))
    np.testing.assert_array_equal(first, second)  # ORT removed the Dropout: outputs look fine
    assert not verify(path).ok  # the graph scan still refuses it


MODEL_NAMES = kerasdrop.list_models() + ["keras_app:EfficientNetB0"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_zoo_model_passes_without_findings(name):
    info = kerasdrop.model_info(name)
    side = max(info.min_spatial_size, 8)
    shape = (side, side, 3 if info.family in ("alexnet", "vgg", "resnet", "keras_app") else 1)
    model = kerasdrop.create_model(name, num_classes=4, input_shape=shape)
    report = verify(model)
    assert report.ok and not [f for f in report.findings if f.severity == "warning"], report.to_json()


def test_inference_twin_replaces_stochastic_layers_and_keeps_weights():
    model = broken_models.dropout_pinned_to_training()
    twin = inference_twin(model)
    assert type(twin.get_layer("fc1_dropout")).__name__ == "Identity"
    assert twin.get_layer("fc1") is model.get_layer("fc1")
    images = np.ones((2, 8), dtype="float32")
    np.testing.assert_allclose(twin(images, training=False), model(images, training=False), atol=1e-6)


def test_report_round_trips_through_json():
    from kerasdrop.verification import Report

    report = verify(broken_models.dropout_pinned_to_training())
    again = Report.from_dict(json.loads(report.to_json()))
    assert again.findings == report.findings and again.ok is False


def test_tf_serving_test_servables_pass(shared_testdata):
    for servable in ("saved_model_half_plus_two_cpu/00000123", "saved_model_half_plus_two_tf2_cpu/00000123"):
        report = verify(shared_testdata / servable)
        assert report.ok, report.to_json()
        assert any(
            f.location == "signature serving_default" and "no random op" in f.message for f in report.findings
        )


# --- the command line ------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path, capsys):
    clean = kerasdrop.create_model("mlp", num_classes=3, input_shape=(4, 4, 1), dense_units=(8,))
    clean.save(tmp_path / "clean.keras")
    broken_models.dropout_pinned_to_training().save(tmp_path / "broken.keras")
    (tmp_path / "corrupt.keras").write_bytes(b"not a zip file")
    assert main(["verify", str(tmp_path / "clean.keras")]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "broken.keras")]) == 1
    assert "fc1_dropout" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "missing.keras")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "corrupt.keras")]) == 2
    assert "cannot be loaded as a Keras model" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "clean.keras"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_lambda_layer_is_refused_by_safe_mode(tmp_path):
    import keras

    inputs = keras.Input((4,), name="images")
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(UnusableInputError, match="Lambda layer .* safe_mode refuses"):
        verify(tmp_path / "lambda.keras")
