"""The out-of-range-probe rule (numerical.OUT_OF_RANGE_RULE): a batch dependence seen only at the large
(+-1e4) probes, outside any operating range, is discounted when only some rows flip (float noise in a
saturated softmax) and kept when every row shifts (batch statistics). Models from other producers."""

import numpy as np
import pytest

from kerasdrop.verification import numerical, probes, verify
from tests.verification import producers


def _large(report):
    return [
        f
        for f in report.findings
        if f.check == "numerical" and "[large probes]" in f.location and "batch" in f.message
    ]


def _messages(report):
    return [f"{f.severity} {f.location}: {f.message}" for f in report.findings if f.severity != "info"]


def test_large_magnitude_is_the_only_one_out_of_range():
    assert [m.name for m in probes.UNDECLARED_MAGNITUDES if not m.in_range] == ["large"]
    assert all(m.in_range for m in probes.magnitudes((0.0, 255.0)))
    scale = probes.magnitudes(None)
    assert numerical.OutOfRange.of(scale[0], scale) is None
    context = numerical.OutOfRange.of(scale[-1], scale)
    assert context.in_range == ("unit interval", "0..255 pixels", "standard normal")


def test_rows_differing_counts_rows_beyond_tolerance_in_any_output():
    batched = {
        "probabilities": np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]]),
        "class_ids": np.array([0, 0, 1]),
    }
    alone = {
        "probabilities": np.array([[0.0, 1.0], [0.5, 0.5 + 1e-7], [0.2, 0.8]]),
        "class_ids": np.array([1, 0, 0]),
    }
    assert numerical.rows_differing(batched, alone, 3) == 2  # row 0 (both outputs) and row 2 (class_ids only)


def _check_saturating(directory):
    # The model really saturates and flips at the large probes: the rule, not a quiet model, decides.
    import tensorflow as tf

    serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
    spec = probes.InputSpec("images", np.dtype("float32"), (8,))
    large = probes.probe_inputs([spec], -1e4, 1e4)["images"]
    batch = serve(images=tf.constant(large))["probabilities"].numpy()
    alone = np.concatenate(
        [serve(images=tf.constant(large[i : i + 1]))["probabilities"].numpy() for i in range(6)]
    )
    return batch, alone


@pytest.mark.parametrize(
    "producer", [producers.saturating_module_saved_model, producers.saturating_legacy_keras_saved_model]
)
def test_float_noise_flipping_a_saturated_softmax_only_at_large_probes_is_discounted(tmp_path, producer):
    directory = producer(tmp_path / "sm", "noise")
    batch, alone = _check_saturating(directory)
    assert np.abs(batch - alone).max() > 0.9 and batch.max(axis=1).max() > 0.999
    report = verify(directory)
    assert report.ok, _messages(report)
    (finding,) = [f for f in _large(report) if "discounted" in f.message]
    assert finding.severity == "info" and "signature serving_default [large probes]" == finding.location
    assert "by up to 1 in 'probabilities', but only 1 of 6 rows differ" in finding.message
    assert (
        "(in range, and judged batch independent first: unit interval, 0..255 pixels, standard normal)"
        in finding.message
    )
    assert "float noise flips a class, while batch statistics shift every row" in finding.message
    assert report.tolerances["out_of_range_rule"] == numerical.OUT_OF_RANGE_RULE
    # The same rows the in-range magnitudes judged batch independent, exactly.
    for name in ("", " [0..255 pixels probes]", " [standard normal probes]"):
        assert any(
            f.location == f"signature serving_default{name}" and "batch independent" in f.message
            for f in report.findings
        )


@pytest.mark.parametrize(
    "producer", [producers.saturating_module_saved_model, producers.saturating_legacy_keras_saved_model]
)
def test_batch_statistics_seen_only_at_large_probes_shift_every_row_and_are_kept(tmp_path, producer):
    report = verify(producer(tmp_path / "sm", "batch_statistics"))
    assert not report.ok
    (finding,) = [f for f in _large(report) if f.severity == "error"]
    assert (
        "every one of the 6 rows differs: kept as evidence though large probes lie outside" in finding.message
    )
    assert "every row shifted is the pattern of batch statistics" in finding.message
    # Invisible in range: only the large probes cross the threshold.
    assert not [f for f in report.errors if "[large probes]" not in f.location], _messages(report)


def test_a_declared_range_is_judged_in_range_whatever_it_is(tmp_path):
    # Probed at the range the user declares (here one reaching the threshold), the same noise is an error:
    # the rule only discounts magnitudes outside the operating range.
    report = verify(
        producers.saturating_module_saved_model(tmp_path / "sm", "noise"), probe_range=(-1e4, 1e4)
    )
    assert any(
        "batch dependent" in f.message and "rows in a batch by up to 1" in f.message for f in report.errors
    ), _messages(report)


@pytest.mark.slow
def test_frozen_mobilenet_saved_model_saturating_at_large_probes_only_passes(tmp_path):
    # The issue's case: a frozen keras.applications backbone with its own Rescaling, exported by Keras'
    # model.export: at the large probes its softmax flips on float noise; 0..255 and below it is exact.
    model = producers.saturating_application_classifier()
    producers.call_once(model)
    model.export(tmp_path / "sm", verbose=False)
    report = verify(tmp_path / "sm")
    assert report.ok, _messages(report)
    discounted = [f for f in _large(report) if "discounted" in f.message]
    assert discounted and all("rows differ" in f.message and "by up to 1" in f.message for f in discounted)
