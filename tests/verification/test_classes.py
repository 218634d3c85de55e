"""Every class of fault the verifier must catch, and every clean class it must pass, in each format.

The artefacts are built in `artefacts.py` with public Keras/TF/ONNX APIs, not with kerasdrop.
"""

import json

import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.verification import verify
from tests.verification import artefacts


def _errors(report, check=None):
    return [f for f in report.errors if check is None or f.check == check]


def _messages(findings):
    return " | ".join(f"{f.location}: {f.message}" for f in findings)


# --- Keras: stochastic layers that model(x) and model.export leave active --------------------------


@pytest.mark.parametrize(
    "build, location",
    [
        (artefacts.dropout_in_sub_model_pinned, "block/block_dropout"),
        (artefacts.dropout_in_time_distributed_pinned, "steps/step_dropout"),
        (artefacts.rnn_dropout_in_bidirectional_pinned, "bi/forward_gru/gru_cell"),
        (artefacts.augmentation_at_default, "translate"),
    ],
)
def test_nested_or_default_stochastic_layers_are_errors(build, location):
    report = verify(build())
    structure = _errors(report, "structure")
    assert location in [f.location for f in structure], _messages(report.findings)
    assert any("without training" in f.location for f in _errors(report, "numerical")), "model(x) is random"
    assert report.exit_code == 1


def test_sub_model_pinned_dropout_is_caught_in_its_model_export(tmp_path):
    artefacts.dropout_in_sub_model_pinned().export(tmp_path / "sm", verbose=False)
    report = verify(tmp_path / "sm")
    assert any("random op" in f.message for f in _errors(report, "graph")), _messages(report.findings)


@pytest.mark.parametrize("first", ["rescaling", "normalization"])
def test_batch_dependence_at_the_declared_pixel_range_is_caught(first):
    model = artefacts.batch_statistics_only_at_pixel_range(first)
    at_unit_range = verify(model, probe_range=(0.0, 1.0))
    assert not _errors(at_unit_range, "numerical"), "probes in [0, 1] never cross the threshold"
    report = verify(model)  # the first layer declares 0..255
    assert any("batch dependent" in f.message for f in _errors(report, "numerical")), _messages(
        report.findings
    )


def test_a_training_run_s_recorded_pixel_range_is_the_probe_range(tmp_path):
    from kerasdrop.verification.probes import run_recorded_range

    # What `kerasdrop train` writes beside model.keras (recipe.toml, [provenance.dataset]).
    (tmp_path / "recipe.toml").write_text("[provenance.dataset]\npixel_range = [0.0, 16.0]\n")
    assert run_recorded_range(tmp_path / "model.keras") == (0.0, 16.0)
    assert run_recorded_range(tmp_path / "elsewhere" / "model.keras") is None


# --- Keras: clean classes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        artefacts.zero_rate_dropout_pinned,
        artefacts.rnn_dropout_at_default,
        artefacts.two_inputs_int_and_float64,
        artefacts.uint8_images,
        artefacts.string_input,
    ],
)
def test_clean_keras_classes_pass_and_are_judged(build):
    report = verify(build())
    assert report.ok, _messages(report.errors)
    judged = [f for f in report.findings if f.check == "numerical" and f.severity == "info"]
    assert any("batch independent" in f.message for f in judged), _messages(report.findings)


def test_rnn_dropout_at_default_passes_in_its_model_export(tmp_path):
    # Keras RNNs draw their dropout masks (advancing a seed variable) even at inference, unused.
    artefacts.rnn_dropout_at_default().export(tmp_path / "sm", verbose=False)
    report = verify(tmp_path / "sm")
    assert report.ok, _messages(report.errors)
    assert any(
        "advances random-number state" in f.message for f in report.findings if f.severity == "warning"
    )


def test_zero_rate_dropout_pinned_is_info():
    report = verify(artefacts.zero_rate_dropout_pinned())
    (finding,) = [f for f in report.findings if f.location == "fc1_dropout"]
    assert finding.severity == "info" and "rate is 0" in finding.message


def test_two_input_model_with_pinned_dropout_is_caught():
    report = verify(artefacts.two_inputs_int_and_float64(pinned=True))
    assert "fc_dropout" in [f.location for f in _errors(report, "structure")]
    assert any("inference is random" in f.message for f in _errors(report, "numerical"))


def test_export_neutralises_augmentation_and_says_so(tmp_path):
    from kerasdrop.exporting import export

    result = export(
        artefacts.augmentation_at_default(),
        name="augmented",
        repo=tmp_path / "repo",
        formats=("savedmodel",),
        models_config=None,
    )
    written = json.loads((result.path / "verification.json").read_text())
    assert written["neutralised"] == [
        {"layer": "translate", "class": "RandomTranslation", "reason": "it defaults to training=True"}
    ]
    assert any(
        f["location"] == "translate" and "plain `model.export` would not" in f["message"]
        for f in written["findings"]
        if f["severity"] == "warning"
    )


# --- SavedModel: ops and signatures --------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, message",
    [
        ("fractional_max_pool_with_seed", "stateful random op FractionalMaxPool"),
        ("strided_slice_assign", "ResourceStridedSliceAssign writes a variable"),
        ("scatter_update", "ResourceScatterAdd writes a variable"),
    ],
)
def test_tf_ops_outside_any_name_list_are_caught(tmp_path, kind, message):
    report = verify(artefacts.saved_model(tmp_path / kind, kind))
    assert any(message in f.message for f in _errors(report, "graph")), _messages(report.findings)


def test_side_effecting_graph_is_refused_before_it_runs(tmp_path):
    written = tmp_path / "written.txt"
    directory = artefacts.write_file_saved_model(tmp_path / "sm", written)
    report = verify(directory)
    (finding,) = _errors(report, "graph")
    assert "signature serving_default" in finding.location and "WriteFile" in finding.message
    assert "refused before running" in finding.message
    assert not written.exists(), "the graph must not have been executed"
    assert not [f for f in report.findings if f.check in ("numerical", "parity") and f.severity != "info"]


def test_random_non_default_signature_is_an_error(tmp_path):
    report = verify(artefacts.random_extra_signature(tmp_path / "sm"))
    locations = [f.location for f in report.errors]
    assert any(location.startswith("signature noisy") for location in locations), _messages(report.findings)
    assert not any(location.startswith("signature serving_default") for location in locations)


def test_mc_dropout_that_writes_serving_state_is_an_error(tmp_path):
    report = verify(artefacts.mc_dropout_updating_statistics(tmp_path / "sm"))
    mc = [f for f in _errors(report, "numerical") if f.location == "signature mc_dropout"]
    assert any("writes variables serving_default reads" in f.message for f in mc), _messages(report.findings)
    assert any("changed serving_default's answers" in f.message for f in mc)


def test_batch_dependence_shown_by_warmup_requests_is_caught(tmp_path):
    directory = artefacts.saved_model(tmp_path / "sm", "batch_dependent_above_threshold")
    assert verify(directory, probe_range=(0.0, 1.0)).ok, "probes in [0, 1] stay under the threshold"
    # With no range declared anywhere, the probes' other magnitudes (0..255 and up) cross it.
    assert any("batch dependent" in f.message for f in _errors(verify(directory), "numerical"))
    rows = np.linspace(0, 255, 8 * 4, dtype="float32").reshape(4, 8)
    artefacts.warmup_file(directory, rows)
    report = verify(directory)
    assert any("batch dependent" in f.message for f in _errors(report, "numerical")), _messages(
        report.findings
    )


def test_mixed_dtype_signature_is_judged_in_both_loaders(tmp_path):
    report = verify(artefacts.mixed_dtypes_saved_model(tmp_path / "sm"))
    assert report.ok, _messages(report.errors)
    infos = [f for f in report.findings if f.severity == "info"]
    assert any(f.location == "signature serving_default" and "batch independent" in f.message for f in infos)
    assert any(f.check == "parity" and "TF Serving's session path agree" in f.message for f in infos)


def test_tf_example_signatures_of_tf_serving_servables_are_run(shared_testdata):
    report = verify(shared_testdata / "saved_model_half_plus_two_cpu/00000123")
    assert report.ok, _messages(report.errors)
    for name in ("classify_x_to_y", "regress_x_to_y", "serving_default"):
        assert any(f.location == f"signature {name}" and "repeatable" in f.message for f in report.findings)


# --- ONNX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, location",
    [
        (artefacts.onnx_random_in_local_function, "function local:Noisy/"),
        (artefacts.onnx_random_in_if_branch, "onnx node branch/"),
    ],
)
def test_onnx_random_ops_in_functions_and_subgraphs_are_caught(tmp_path, build, location):
    report = verify(build(tmp_path / "model.onnx"))
    assert any(location in f.location and "random op" in f.message for f in _errors(report, "graph")), (
        _messages(report.findings)
    )


@pytest.mark.parametrize("folds_to", [False, True])
def test_onnx_dropout_training_mode_is_constant_folded(tmp_path, folds_to):
    report = verify(artefacts.onnx_dropout_with_folded_training_mode(tmp_path / "model.onnx", folds_to))
    assert report.ok is (not folds_to), _messages(report.findings)
    if folds_to:
        assert any("training_mode constant true" in f.message for f in _errors(report, "graph"))


@pytest.mark.parametrize(
    "build", [artefacts.onnx_two_inputs_double_and_int64, artefacts.onnx_string_in_and_out]
)
def test_onnx_inputs_of_other_dtypes_are_judged(tmp_path, build):
    report = verify(build(tmp_path / "model.onnx"))
    assert report.ok, _messages(report.errors)
    assert any("batch independent" in f.message for f in report.findings if f.check == "numerical")


# --- never a traceback ---------------------------------------------------------------------------


def test_cli_reports_any_failure_in_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"\x00garbage")
    assert main(["verify", str(tmp_path / "empty")]) == 2
    assert main(["verify", str(tmp_path / "model.onnx")]) == 2
    monkeypatch.setattr("kerasdrop.verification.verify", lambda *args, **kwargs: 1 / 0)
    assert main(["verify", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ZeroDivisionError: division by zero" in err
    assert len([line for line in err.splitlines() if line.startswith("kerasdrop verify")]) == 3
