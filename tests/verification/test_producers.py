"""Models from other producers, clean and broken: each clean one passes, each broken one is refused.

Built in the tests (see producers.py); nothing is downloaded.
"""

import onnx
import pytest

from kerasdrop.verification import verify
from tests.verification import producers


def _errors(report, check=None):
    return [f for f in report.errors if check is None or f.check == check]


def _messages(report):
    return [
        f"{f.severity} {f.check} {f.location}: {f.message}" for f in report.findings if f.severity != "info"
    ]


# --- tf-keras (Keras 2) SavedModels ----------------------------------------------------------------


def _legacy_save(model, directory, how):
    import tensorflow as tf

    if how == "model.save":
        model.save(str(directory))  # tf-keras writes a SavedModel for a path without .keras/.h5
    else:
        tf.saved_model.save(model, str(directory))
    return directory


@pytest.mark.parametrize("how", ["model.save", "tf.saved_model.save"])
@pytest.mark.parametrize(
    "kind, message",
    [
        ("clean", None),
        ("dropout_pinned", "stateful random op RandomUniform"),
        ("batch_norm_pinned", "writes a variable while serving"),
    ],
)
def test_legacy_keras_saved_models(tmp_path, how, kind, message):
    report = verify(_legacy_save(producers.legacy_keras_model(kind), tmp_path / "sm", how))
    if message is None:
        assert report.ok and not [f for f in report.findings if f.severity == "warning"], _messages(report)
    else:
        assert any(message in f.message for f in _errors(report, "graph")), _messages(report)
        assert _errors(report, "numerical"), "the served signature is also caught running"


# --- keras.applications backbones with a head ----------------------------------------------------


def test_frozen_mobilenet_fine_tuning_recipe_passes_as_keras_runs_it(tmp_path):
    model = producers.application_classifier("MobileNetV3Small", frozen=True, backbone_training=True)
    model.save(tmp_path / "model.keras")
    report = verify(tmp_path / "model.keras")
    assert report.ok and not _messages(report), _messages(report)
    frozen = [f for f in report.findings if "frozen (trainable=False)" in f.message]
    assert len(frozen) > 20, "every BatchNormalization of the backbone is judged frozen"


def test_trainable_mobilenet_called_in_training_mode_is_refused():
    report = verify(producers.application_classifier("MobileNetV3Small", backbone_training=True))
    assert len(_errors(report, "structure")) > 20 and _errors(report, "numerical"), _messages(report)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [False, True])
def test_mobilenet_saved_model_export(tmp_path, broken):
    model = producers.application_classifier("MobileNetV3Small", backbone_training=True if broken else None)
    model.export(tmp_path / "sm", verbose=False)
    report = verify(tmp_path / "sm")
    if broken:
        assert any("writes a variable" in f.message for f in _errors(report, "graph")), _messages(report)
    else:
        assert report.ok and not _messages(report), _messages(report)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [False, True])
def test_mobilenet_onnx_export(tmp_path, broken):
    model = producers.application_classifier("MobileNetV3Small", backbone_training=True if broken else None)
    producers.call_once(model)  # Keras' ONNX export needs a model that has been called
    model.export(tmp_path / "model.onnx", format="onnx", verbose=False)
    report = verify(tmp_path / "model.onnx")
    assert report.ok is not broken, _messages(report)
    if broken:  # tf2onnx writes batch statistics as plain reductions: only running it shows them
        assert any("batch dependent" in f.message for f in _errors(report, "numerical")), _messages(report)


@pytest.mark.slow
def test_efficientnet_stochastic_depth_is_caught_though_the_outputs_hide_it(tmp_path):
    # The clean EfficientNet (keras_app:EfficientNetB0) passes in test_verify.py's zoo test. Frozen
    # weights do not stop Dropout: under training=True stochastic depth drops residual branches.
    # Untrained, their effect on the probabilities is below float resolution: structure and the drawn
    # random numbers decide.
    report = verify(producers.application_classifier("EfficientNet", frozen=True, backbone_training=True))
    dropped = [f for f in _errors(report, "structure") if f.location.endswith("_drop")]
    assert len(dropped) == 3, _messages(report)
    assert any(
        "draws random numbers" in f.message and "block" in f.message for f in _errors(report, "numerical")
    )
    assert not any("numbers disagree" in f.message for f in report.findings)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["savedmodel", "onnx"])
def test_efficientnet_stochastic_depth_survives_export_and_is_caught(tmp_path, form):
    model = producers.application_classifier("EfficientNet", frozen=True, backbone_training=True)
    path = tmp_path / ("sm" if form == "savedmodel" else "model.onnx")
    producers.call_once(model)
    model.export(path, format="tf_saved_model" if form == "savedmodel" else "onnx", verbose=False)
    report = verify(path)
    assert any("random op" in f.message for f in _errors(report, "graph")), _messages(report)
    if form == "onnx":  # tf2onnx left TF's StatelessRandomUniformV2 in place: ONNX Runtime cannot load it
        assert report.not_run and report.exit_code == 1


@pytest.mark.slow
def test_convnext_unseeded_stochastic_depth_is_caught_by_its_random_draws(tmp_path):
    assert verify(producers.application_classifier("ConvNeXt", frozen=True, backbone_training=False)).ok
    report = verify(producers.application_classifier("ConvNeXt", frozen=True, backbone_training=True))
    assert any("global seed generator" in f.message for f in _errors(report, "numerical")), _messages(report)


def test_densenet_frozen_in_training_mode_passes_and_trainable_is_refused(tmp_path):
    model = producers.application_classifier("DenseNet", frozen=True, backbone_training=True)
    model.save(tmp_path / "model.keras")
    assert verify(tmp_path / "model.keras").ok
    report = verify(producers.application_classifier("DenseNet", backbone_training=True))
    assert any(
        f.location.startswith("densenet_small/") and "BatchNormalization" in f.message
        for f in _errors(report, "structure")
    ), _messages(report)


# --- keras-hub backbones ----------------------------------------------------------------------------


def test_keras_hub_backbone_with_token_ids_and_padding_mask(tmp_path):
    model = producers.hub_classifier()
    report = verify(model)
    assert report.ok and not _messages(report), _messages(report)
    model.save(tmp_path / "model.keras")
    assert verify(tmp_path / "model.keras").ok
    broken = verify(producers.hub_classifier(backbone_training=True))
    assert any("dropout" in f.location for f in _errors(broken, "structure")), _messages(broken)
    assert _errors(broken, "numerical"), "a transformer's dropout in training mode is random"


@pytest.mark.slow
@pytest.mark.parametrize("broken", [False, True])
def test_keras_hub_backbone_saved_model(tmp_path, broken):
    producers.hub_classifier(backbone_training=True if broken else None).export(
        tmp_path / "sm", verbose=False
    )
    report = verify(tmp_path / "sm")
    assert report.ok is not broken, _messages(report)
    if broken:
        assert any("random op" in f.message for f in _errors(report, "graph"))


# --- ONNX's backend test models ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_backend_models():
    return producers.onnx_backend_models()


@pytest.mark.parametrize("name", producers.ONNX_BACKEND_CLEAN + producers.ONNX_BACKEND_BROKEN)
def test_onnx_backend_node_models(tmp_path, onnx_backend_models, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(onnx_backend_models[name], str(path))
    report = verify(path)
    if name in producers.ONNX_BACKEND_CLEAN:
        assert report.ok, _messages(report)
    else:
        assert _errors(report, "graph") and report.exit_code == 1, _messages(report)
