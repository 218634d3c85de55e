"""`kerasdrop export --int8`: model.int8.onnx is published only when test accuracy holds; the numbers are
recorded either way; golden outputs for the onnx-int8 backend; `kerasdrop serve --backend onnx-int8`."""

import json
import shutil

import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.errors import InvalidArgumentError
from kerasdrop.exporting import export
from kerasdrop.exporting.golden import warmup_inputs
from kerasdrop.exporting.int8 import run_datasets
from kerasdrop.layout import read_golden
from tests.serving.conftest import rest, running_server

pytestmark = pytest.mark.slow  # trains a model and quantises it


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """An MLP trained on the embedded digits to ~93% test accuracy (a run directory)."""
    from kerasdrop.training import train

    return train(
        {
            "model": "mlp",
            "dataset": "digits",
            "epochs": 15,
            "batch_size": 64,
            "dense_units": [64],
            "dropout": 0.2,
        },
        out=tmp_path_factory.mktemp("digits") / "run",
        verbose=0,
    )


@pytest.fixture(scope="module")
def int8_export(digits_run, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo") / "export"
    return export(
        digits_run.directory / "model.keras",
        name="digits",
        repo=repo,
        int8=True,
        image_bytes=True,
        models_config=None,
    )


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_int8_is_published_when_accuracy_holds_with_its_measurements(int8_export, digits_run):
    import onnx

    result = int8_export
    record = result.int8
    assert record["published"] is True and (result.path / "model.int8.onnx").is_file()
    assert record["drop_points"] <= record["max_drop_points"] == 0.5
    assert record["drop_points"] == pytest.approx(
        100 * (record["fp32_accuracy"] - record["int8_accuracy"]), abs=1e-3
    )
    # fp32 accuracy is the run's own test accuracy (same split), measured on model.onnx.
    assert record["fp32_accuracy"] == pytest.approx(digits_run.metrics["test_accuracy"], abs=1.5 / 360)
    assert record["fp32_bytes"] == (result.path / "model.onnx").stat().st_size
    assert record["int8_bytes"] == (result.path / "model.int8.onnx").stat().st_size
    for batch in ("1", "64"):
        row = record["latency_ms"][batch]
        assert row["fp32_ms"] > 0 and row["int8_ms"] > 0
        assert row["int8_over_fp32"] == pytest.approx(row["int8_ms"] / row["fp32_ms"], rel=0.01)
    assert json.loads((result.path / "verification.json").read_text())["int8"] == record
    card = json.loads((result.path / "model_card.json").read_text())
    assert "model.int8.onnx" in card["export"]["files"] and card["export"]["int8"] == record
    # QDQ: int8 weights between QuantizeLinear/DequantizeLinear pairs.
    graph = onnx.load(str(result.path / "model.int8.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert any(tensor.data_type == onnx.TensorProto.INT8 for tensor in graph.initializer)


def test_int8_probabilities_are_a_float_softmax_that_sums_to_one_and_every_criterion_is_stated(
    int8_export, digits_run
):
    import onnx

    record = int8_export.int8
    # The softmax and the classifier layer before it stay float32: no QuantizeLinear on the probabilities.
    graph = onnx.load(str(int8_export.path / "model.int8.onnx")).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    assert producers["probabilities"] == "Softmax" and "mlp_1/predictions_1/MatMul" in record["float32_nodes"]
    images = np.concatenate([batch.numpy() for batch, _ in run_datasets(digits_run.directory).test])
    (fp32,) = _session(int8_export.path / "model.onnx").run(["probabilities"], {"images": images})
    (int8,) = _session(int8_export.path / "model.int8.onnx").run(["probabilities"], {"images": images})
    np.testing.assert_allclose(int8.sum(axis=1), 1.0, atol=1e-5)
    steps = np.abs(int8 * 255 - np.round(int8 * 255))
    assert steps.max() > 0.1, "probabilities in 1/255 steps: the softmax output is still quantised"
    assert record["max_probability_error"] == pytest.approx(float(np.abs(int8 - fp32).max()), abs=1e-5)
    names = [row["criterion"] for row in record["criteria"]]
    assert names == [
        "accuracy_drop",
        "max_probability_error",
        "nll_increase",
        "ece_increase",
        "probability_sum_error",
    ]
    assert all(row["passed"] and row["value"] <= row["limit"] for row in record["criteria"])
    assert record["limits"] == {
        "max_drop": 0.5,
        "max_probability_error": 0.1,
        "max_nll_increase": 0.05,
        "max_ece_increase": 0.02,
    }
    card = (int8_export.path / "MODEL_CARD.md").read_text()
    for row in record["criteria"]:
        assert f"| {row['criterion']} | {row['value']:.4g} | {row['limit']:g} | pass |" in card
    assert f"fp32 {record['fp32_nll']:.4f} → int8 {record['int8_nll']:.4f}" in card
    assert f"fp32 {record['fp32_ece']:.4f} → int8 {record['int8_ece']:.4f}" in card


def test_each_new_int8_limit_refuses_the_model_by_name_with_its_figure(
    int8_export, digits_run, tmp_path, capsys
):
    # The digits model passes at the defaults; a limit under its own figure must refuse it, naming that
    # criterion's flag and figure, and leave model.onnx published.
    record = int8_export.int8
    figures = {
        "--int8-max-probability-error": record["max_probability_error"],
        "--int8-max-nll-increase": record["nll_increase"],
        "--int8-max-ece-increase": record["ece_increase"],
    }
    tight = {flag: value / 2 for flag, value in figures.items() if value > 0}
    assert "--int8-max-probability-error" in tight, "a quantised model moves some probability"
    args = [item for flag, limit in tight.items() for item in (flag, f"{limit:.8g}")]
    assert (
        main(
            [
                "export",
                str(digits_run.directory / "model.keras"),
                "--name",
                "tight",
                "--repo",
                str(tmp_path / "export"),
                "--int8",
                *args,
                "--models-config",
                str(tmp_path / "models.config"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    version = tmp_path / "export" / "tight" / "1"
    assert (version / "model.onnx").is_file() and not (version / "model.int8.onnx").exists()
    refused = json.loads((version / "verification.json").read_text())["int8"]
    assert refused["published"] is False
    # Calibration batches come from a shuffled training split, so this export's figures differ a little
    # from the fixture's: each criterion is judged on its own record.
    rows = {row["criterion"]: row for row in refused["criteria"]}
    criteria = {
        "--int8-max-probability-error": "max_probability_error",
        "--int8-max-nll-increase": "nll_increase",
        "--int8-max-ece-increase": "ece_increase",
    }
    assert not rows["max_probability_error"]["passed"]
    for flag, limit in tight.items():
        row = rows[criteria[flag]]
        assert row["limit"] == pytest.approx(limit) and row["passed"] is (row["value"] <= row["limit"])
        assert (f"more than the {limit:.8g} allowed ({flag})" in refused["reason"]) is not row["passed"], (
            refused
        )
    assert f"a class probability moves by up to {refused['max_probability_error']:.4f}" in refused["reason"]
    assert "int8 model.int8.onnx: REFUSED" in out and "FAIL" in out
    card = (version / "MODEL_CARD.md").read_text()
    assert "`model.int8.onnx` not published" in card and "| FAIL |" in card


def test_golden_outputs_of_the_int8_backend_are_what_model_int8_onnx_answers(int8_export):
    result = int8_export
    golden = read_golden(result.path)
    entry = golden["backends"]["onnx-int8"]
    assert entry["file"] == "model.int8.onnx"
    session = _session(result.path / "model.int8.onnx")
    names = [output.name for output in session.get_outputs()]
    requests = warmup_inputs(result.path, "serving_default")
    assert len(entry["outputs"]) == len(requests) == len(golden["outputs"])
    differs = False
    for expected, fp32, inputs in zip(entry["outputs"], golden["outputs"], requests):
        answer = dict(zip(names, session.run(names, inputs)))
        np.testing.assert_allclose(expected["probabilities"], answer["probabilities"], **golden["tolerance"])
        np.testing.assert_array_equal(expected["class_ids"], answer["class_ids"])
        differs |= not np.array_equal(expected["probabilities"], fp32["probabilities"])
    assert differs, "the int8 golden outputs are a copy of the fp32 ones"


def test_serve_backend_onnx_int8_serves_model_int8_onnx(int8_export):
    result = int8_export
    images = warmup_inputs(result.path, "serving_default")[1]["images"]
    (expected,) = _session(result.path / "model.int8.onnx").run(["probabilities"], {"images": images})
    with running_server(repo=result.path.parent.parent, backend="onnx-int8") as server:
        status, body = rest(server, "POST", "/v1/models/digits:predict", {"instances": images.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(
        [row["probabilities"] for row in body["predictions"]], expected, rtol=0, atol=1e-6
    )


def test_serving_bytes_maps_8_bit_pixels_onto_the_models_pixel_range(int8_export):
    # The digits run's pixels are 0..16: an 8-bit value v arrives as v * 16 / 255.
    import tensorflow as tf

    from kerasdrop.exporting.image_bytes import encode_png

    loaded = tf.saved_model.load(str(int8_export.path))
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype("uint8")
    encoded = tf.constant(np.array([encode_png(image) for image in pixels], dtype=object))
    from_bytes = loaded.signatures["serving_bytes"](images_bytes=encoded)["probabilities"].numpy()
    floats = tf.constant(pixels.astype("float32") * np.float32(16 / 255))
    np.testing.assert_allclose(
        from_bytes, loaded.signatures["serving_default"](images=floats)["probabilities"], atol=1e-5, rtol=1e-4
    )


def _with_outlier_weights(run_dir, out_dir):
    """A copy of the run whose model gives the same fp32 answers on digits but has fc1 weights of 1e4 on pixel
    (0, 0), which is 0 in every digits image: per-tensor int8 scales all of fc1's weights to 1e4 / 127 and
    rounds every real weight to zero."""
    import keras

    shutil.copytree(run_dir, out_dir)
    model = keras.saving.load_model(out_dir / "model.keras")
    kernel, bias = model.get_layer("fc1").get_weights()
    kernel[0, :] = 1e4
    model.get_layer("fc1").set_weights([kernel, bias])
    model.save(out_dir / "model.keras")
    return model


def test_int8_gate_refuses_a_model_whose_accuracy_drops_and_still_publishes_fp32(
    digits_run, tmp_path, capsys
):
    import keras

    run_dir = tmp_path / "outlier"
    outlier = _with_outlier_weights(digits_run.directory, run_dir)
    original = keras.saving.load_model(digits_run.directory / "model.keras")
    images = np.concatenate([batch.numpy() for batch, _ in run_datasets(digits_run.directory).test])
    assert not images[:, 0, 0, 0].any()
    np.testing.assert_allclose(outlier(images, training=False), original(images, training=False), atol=1e-5)

    assert (
        main(
            [
                "export",
                str(run_dir / "model.keras"),
                "--name",
                "outlier",
                "--repo",
                str(tmp_path / "export"),
                "--int8",
                "--int8-max-drop",
                "0.5",
                "--models-config",
                str(tmp_path / "models.config"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    version = tmp_path / "export" / "outlier" / "1"
    assert (version / "model.onnx").is_file() and not (version / "model.int8.onnx").exists()
    record = json.loads((version / "verification.json").read_text())["int8"]
    assert record["published"] is False and record["drop_points"] > 0.5
    assert "more than the 0.5 allowed (--int8-max-drop)" in record["reason"]
    # Rounding every fc1 weight to zero also moves the probabilities and the NLL: each failed criterion is named.
    assert "a class probability moves by up to" in record["reason"] and "NLL rises by" in record["reason"]
    assert "int8 model.int8.onnx: REFUSED (model.onnx, fp32, is still published)" in out
    assert f"drop {record['drop_points']:.2f} points" in out and "int8/fp32" in out
    assert "backends" not in read_golden(version)


def test_int8_needs_a_run_directory_and_the_onnx_format(digits_run, tmp_path, capsys):
    bare = tmp_path / "bare.keras"
    shutil.copy(digits_run.directory / "model.keras", bare)
    with pytest.raises(
        InvalidArgumentError,
        match=r"Invalid value received for argument `int8`. Expected a run's "
        r"model.keras \(int8 is calibrated on the run's training data",
    ):
        export(bare, name="bare", repo=tmp_path / "export", int8=True, models_config=None)
    with pytest.raises(InvalidArgumentError, match="Expected the onnx format"):
        export(
            digits_run.directory / "model.keras",
            name="x",
            repo=tmp_path / "export",
            int8=True,
            formats=["savedmodel"],
            models_config=None,
        )
    with pytest.raises(InvalidArgumentError, match="argument `int8_max_drop`. Expected accuracy points in"):
        export(
            digits_run.directory / "model.keras",
            name="x",
            repo=tmp_path / "export",
            int8=True,
            int8_max_drop=-1,
            models_config=None,
        )
    assert main(["export", str(bare), "--name", "bare", "--repo", str(tmp_path / "export"), "--int8"]) == 2
    assert "is not in a run directory of `kerasdrop train`" in capsys.readouterr().err
    assert not (tmp_path / "export" / "bare").exists() or not any((tmp_path / "export" / "bare").iterdir())
