"""The structure check judges the mode Keras actually runs, and says when structure and numbers disagree.

Each rule has a clean model it must pass and a broken neighbour it must still refuse.
"""

import keras
import pytest

from kerasdrop.cli import main
from kerasdrop.verification import verify


def _errors(report, check=None):
    return [f for f in report.errors if check is None or f.check == check]


def _head(inputs, x):
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))


def _backbone(*, dropout: bool = False):
    layers = [
        keras.Input((8,)),
        keras.layers.Dense(16, name="backbone_fc"),
        keras.layers.BatchNormalization(name="backbone_bn"),
    ]
    if dropout:
        layers.append(keras.layers.Dropout(0.5, name="backbone_dropout"))
    return keras.Sequential(layers, name="backbone")


def frozen_backbone_called_in_training_mode(*, frozen: bool = True, dropout: bool = False):
    """Keras' fine-tuning recipe gone half-way: the backbone frozen, its call passes training=True."""
    backbone = _backbone(dropout=dropout)
    backbone.trainable = not frozen
    inputs = keras.Input((8,), name="images")
    x = backbone(inputs, training=True)
    return _head(inputs, keras.layers.Dropout(0.5, name="fc_dropout")(x))


def test_frozen_batch_norm_under_training_true_is_inference_mode_as_in_keras():
    report = verify(frozen_backbone_called_in_training_mode())
    assert report.ok, report.to_json()
    (finding,) = [f for f in report.findings if f.location == "backbone/backbone_bn"]
    assert finding.severity == "info" and "frozen (trainable=False)" in finding.message
    assert any("matches its inference twin (max difference 0)" in f.message for f in report.findings)


def test_trainable_batch_norm_under_training_true_is_still_refused():
    report = verify(frozen_backbone_called_in_training_mode(frozen=False))
    assert [f.location for f in _errors(report, "structure")] == ["backbone/backbone_bn"]
    assert any("batch dependent" in f.message for f in _errors(report, "numerical"))


def test_dropout_in_a_frozen_backbone_is_still_active():
    # `trainable=False` freezes weights only: Keras' Dropout still drops under training=True.
    report = verify(frozen_backbone_called_in_training_mode(dropout=True))
    assert [f.location for f in _errors(report, "structure")] == ["backbone/backbone_dropout"]
    assert any("inference is random" in f.message for f in _errors(report, "numerical"))


def test_frozen_model_passes_on_the_command_line(tmp_path, capsys):
    frozen_backbone_called_in_training_mode().save(tmp_path / "frozen.keras")
    assert main(["verify", str(tmp_path / "frozen.keras")]) == 0
    assert "PASS" in capsys.readouterr().out


class InferenceOnlyBatchNormalization(keras.layers.BatchNormalization):
    """A BatchNormalization subclass whose call ignores `training` (always moving statistics)."""

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


def test_structure_error_contradicted_by_the_numbers_is_a_warning_that_says_so():
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(16, name="fc1")(inputs)
    x = InferenceOnlyBatchNormalization(name="fc1_bn")(x, training=True)
    report = verify(_head(inputs, x))
    assert report.ok, report.to_json()
    (layer,) = [f for f in report.findings if f.location == "fc1_bn"]
    assert layer.severity == "warning" and "the numbers disagree" in layer.message
    assert any("disagree on 1 layer call" in f.message for f in report.findings if f.severity == "warning")


def test_numbers_the_structure_cannot_explain_are_an_error_that_says_so():
    # A Lambda (built-in, so not flagged as custom) rescaling by the batch's maximum.
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Lambda(lambda t: t / keras.ops.maximum(1.0, keras.ops.max(t)), name="batch_rescale")(
        inputs
    )
    report = verify(_head(inputs, keras.layers.Dense(16, name="fc1")(x)))
    assert any("batch dependent" in f.message for f in _errors(report, "numerical"))
    assert any("structure and numerical evidence disagree" in f.message for f in report.findings)


@pytest.mark.parametrize("rate, ok", [(0.0, True), (0.3, False)])
def test_dropout_pinned_to_training_is_active_unless_its_rate_is_0(rate, ok):
    inputs = keras.Input((8,), name="images")
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    report = verify(_head(inputs, keras.layers.Dropout(rate, name="fc1_dropout")(x, training=True)))
    assert report.ok is ok, report.to_json()
