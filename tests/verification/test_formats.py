"""`kerasdrop verify` on LiteRT (.tflite) and OpenVINO (.xml) files from other producers, clean and broken.

Producers (tests/verification/format_producers.py): Keras's own `model.export(format=...)`,
`tf.lite.TFLiteConverter` from a SavedModel or a concrete function, `openvino.convert_model` from a
SavedModel or an ONNX file, and OpenVINO's own graph API. Each file is built once per module.
"""

import json
import sys

import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.verification import UnusableInputError, verify
from tests.verification import format_producers as producers


@pytest.fixture(scope="module")
def model():
    return producers.small_classifier()


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    """Every producer's file once: `{(producer, kind): path}` (about a minute on a quiet machine: the tests
    that use it are marked slow)."""
    directory = tmp_path_factory.mktemp("formats")
    built = {
        ("keras", "litert"): producers.keras_export(model, "litert", directory),
        ("keras", "openvino"): producers.keras_export(model, "openvino", directory),
    }
    for kind in ("clean", "uniform", "batch_norm"):
        built[("tflite_saved_model", kind)] = producers.tflite_from_saved_model(model, kind, directory)
        built[("tflite_concrete_function", kind)] = producers.tflite_from_concrete_function(
            model, kind, directory
        )
        built[("openvino_saved_model", kind)] = producers.openvino_from_saved_model(model, kind, directory)
        built[("openvino_onnx", kind)] = producers.openvino_from_onnx(model, kind, directory)
    # A Keras Dropout called with training=True draws with stateless TF ops: TFLite keeps them only as
    # Select-TF-ops (Flex) custom ops; OpenVINO's converter refuses them.
    built[("tflite_saved_model", "dropout")] = producers.tflite_from_saved_model(
        model, "dropout", directory, select_tf_ops=True
    )
    return built


def _errors(report):
    return [f"{finding.check}: {finding.message}" for finding in report.errors]


@pytest.mark.slow
@pytest.mark.parametrize(
    "producer, kind",
    [
        ("keras", "litert"),
        ("keras", "openvino"),
        ("tflite_saved_model", "clean"),
        ("tflite_concrete_function", "clean"),
        ("openvino_saved_model", "clean"),
        ("openvino_onnx", "clean"),
    ],
)
def test_clean_files_from_every_producer_pass_by_running_them(files, producer, kind):
    report = verify(files[(producer, kind)])
    assert report.verdict == "pass" and report.exit_code == 0, _errors(report)
    passed = [finding.message for finding in report.findings if finding.severity == "info"]
    assert any(message.startswith("batch independent") for message in passed)
    assert any(message.startswith("repeatable") for message in passed)
    assert report.kind == ("litert" if files[(producer, kind)].suffix == ".tflite" else "openvino")


@pytest.mark.slow
@pytest.mark.parametrize(
    "producer, random_op",
    [
        ("tflite_saved_model", "RANDOM_UNIFORM"),
        ("tflite_concrete_function", "RANDOM_UNIFORM"),
        ("openvino_saved_model", "RandomUniform"),
        ("openvino_onnx", "RandomUniform"),
    ],
)
def test_live_dropout_as_a_random_op_is_caught_in_the_graph_and_numerically(files, producer, random_op):
    report = verify(files[(producer, "uniform")])
    assert report.exit_code == 1
    assert any(f.check == "graph" and f"random op {random_op}" in f.message for f in report.errors)
    assert any(f.check == "numerical" and "inference is random" in f.message for f in report.errors)


@pytest.mark.slow
def test_keras_dropout_called_with_training_true_is_caught_as_flex_random_ops(files):
    report = verify(files[("tflite_saved_model", "dropout")])
    assert report.exit_code == 1
    assert any(
        "TensorFlow random op StatelessRandomUniformV2 run through the Select-TF-ops delegate" in f.message
        for f in report.errors
    ), _errors(report)


@pytest.mark.slow
@pytest.mark.parametrize(
    "producer, op",
    [
        ("tflite_saved_model", "MEAN"),
        ("tflite_concrete_function", "MEAN"),
        ("openvino_saved_model", "ReduceMean"),
        ("openvino_onnx", "ReduceMean"),
    ],
)
def test_training_mode_batch_norm_is_caught_as_batch_statistics(files, producer, op):
    report = verify(files[(producer, "batch_norm")])
    assert report.exit_code == 1
    assert any(
        f.check == "graph" and f.message.startswith(f"{op} over the batch axis") for f in report.errors
    )
    if producer.startswith("tflite"):  # its moving-statistics update survives as a variable write
        assert any("ASSIGN_VARIABLE writes a variable" in f.message for f in report.errors)
    else:
        assert any(f.check == "numerical" and "batch dependent" in f.message for f in report.errors)


def test_openvino_mvn_over_the_batch_axis_built_with_openvinos_graph_api(tmp_path):
    import openvino
    import openvino.opset13 as ops

    def build(axes):
        images = ops.parameter(openvino.PartialShape([-1, 8]), np.float32, name="images")
        normalised = ops.mvn(images, ops.constant(np.array(axes, "int64")), True, 1e-3, "inside_sqrt")
        weights = ops.constant(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"))
        probabilities = ops.softmax(ops.matmul(normalised, weights, False, False), -1)
        probabilities.output(0).set_names({"probabilities"})
        return openvino.Model([probabilities], [images], "mvn")

    openvino.save_model(build([0]), str(tmp_path / "batch.xml"))
    openvino.save_model(build([1]), str(tmp_path / "rows.xml"))
    batch, rows = verify(tmp_path / "batch.xml"), verify(tmp_path / "rows.xml")
    assert any(f.message.startswith("MVN over the batch axis") for f in batch.errors)
    assert any("batch dependent" in f.message for f in batch.errors)
    assert rows.verdict == "pass", _errors(
        rows
    )  # per-row normalisation (a LayerNorm) is not batch statistics


def test_a_tflite_file_that_computes_nan_fails_though_nan_is_repeatable(tmp_path):
    # NaN on every call is repeatable and "batch independent" too (as a .tflite whose variables a converter
    # never froze gives): only a finiteness check refuses it.
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
    def serve(images):
        return {"probabilities": tf.nn.softmax(tf.sqrt(-1.0 - tf.abs(images))[:, :3])}

    path = tmp_path / "nan.tflite"
    path.write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()]).convert()
    )
    report = verify(path)  # converted without signatures: run by its tensors' names
    assert report.exit_code == 1
    assert any("non-finite outputs" in f.message for f in report.errors), _errors(report)


@pytest.mark.slow
def test_tflite_signature_with_a_dynamic_batch_is_resized_and_compared_row_by_row(files):
    from kerasdrop.verification import runtimes

    runner, specs = runtimes.litert_signature(files[("tflite_saved_model", "batch_norm")])
    assert specs[0].batched and specs[0].row_shape == (8,)
    run = runtimes.litert_runtime(runner)
    images = np.random.default_rng(0).uniform(0, 1, (5, 8)).astype("float32")
    whole = run({"images": images})["probabilities"]
    alone = np.concatenate([run({"images": images[i : i + 1]})["probabilities"] for i in range(5)])
    assert whole.shape == alone.shape == (5, 3)
    assert np.abs(whole - alone).max() > 1e-3  # batch statistics: the same rows differ alone


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """Quick files without a Keras model: `{(format, "clean" | "random"): path}`, from a concrete function
    (LiteRT) and OpenVINO's graph API, each `images [?, 8] -> probabilities [?, 3]`."""
    import openvino
    import openvino.opset13 as ov_ops
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("tiny")
    weights = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    built = {}
    for kind in ("clean", "random"):

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
        def serve(images, kind=kind):
            if kind == "random":
                images = images * tf.random.uniform(tf.shape(images))
            return {"probabilities": tf.nn.softmax(tf.matmul(images, weights))}

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [serve.get_concrete_function()], tf.Module()
        )
        built[("litert", kind)] = directory / f"{kind}.tflite"
        built[("litert", kind)].write_bytes(converter.convert())

        images = ov_ops.parameter(openvino.PartialShape([-1, 8]), np.float32, name="images")
        x = images
        if kind == "random":
            noise = ov_ops.random_uniform(
                ov_ops.shape_of(images), ov_ops.constant(np.float32(0)), ov_ops.constant(np.float32(1)), "f32"
            )
            x = ov_ops.multiply(images, noise)
        probabilities = ov_ops.softmax(ov_ops.matmul(x, ov_ops.constant(weights), False, False), -1)
        probabilities.output(0).set_names({"probabilities"})
        built[("openvino", kind)] = directory / f"{kind}.xml"
        openvino.save_model(openvino.Model([probabilities], [images], kind), str(built[("openvino", kind)]))
    return built


@pytest.mark.parametrize("fmt", ["litert", "openvino"])
def test_tiny_files_clean_pass_and_random_fail(tiny_files, fmt):
    assert verify(tiny_files[(fmt, "clean")]).exit_code == 0
    report = verify(tiny_files[(fmt, "random")])
    assert report.exit_code == 1
    assert any(f.check == "graph" and "random op" in f.message for f in report.errors)


@pytest.mark.parametrize("fmt, missing", [("litert", "ai_edge_litert.interpreter"), ("openvino", "openvino")])
def test_without_the_runtime_verify_names_the_package_and_never_passes(
    tiny_files, monkeypatch, capsys, fmt, missing
):
    monkeypatch.setitem(
        sys.modules, missing, None
    )  # `import` of it now raises ImportError, as if not installed
    path = tiny_files[(fmt, "clean")]
    report = verify(path)
    assert report.verdict == "graph-only" and not report.ok and report.exit_code == 3
    (not_run,) = report.not_run
    assert f"pip install 'kerasdrop[{fmt}]'" in not_run["reason"]
    assert main(["verify", str(path), "--json"]) == 3
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "graph-only" and not printed["ok"]
    assert main(["verify", str(path)]) == 3
    assert f"kerasdrop[{fmt}]" in capsys.readouterr().out.replace("\n", "")
    # A broken file is still refused from its graph alone.
    assert verify(tiny_files[(fmt, "random")]).exit_code == 1


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("model.tflite", b"not a flatbuffer at all", "no TFL3 identifier"),
        ("model.xml", b"<html></html>", "is not an OpenVINO IR"),
        ("model.xml", b"<net><layers>", "is not readable XML"),
    ],
)
def test_unusable_files_exit_2(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnusableInputError, match=message):
        verify(path)
    assert main(["verify", str(path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_verdicts_for_tflite_and_openvino_files(files, capsys):
    assert main(["verify", str(files[("tflite_saved_model", "clean")])]) == 0
    assert main(["verify", str(files[("openvino_onnx", "clean")])]) == 0
    assert main(["verify", str(files[("tflite_concrete_function", "uniform")])]) == 1
    assert main(["verify", str(files[("openvino_saved_model", "batch_norm")])]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("axis, batch_statistics", [(0, True), (1, False)])
def test_tflite_mean_is_batch_statistics_only_over_the_batch_axis(tmp_path, axis, batch_statistics):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="images")])
    def serve(images):
        centred = images - tf.reduce_mean(images, axis=axis, keepdims=True)
        return {"probabilities": tf.nn.softmax(centred[:, :3])}

    path = tmp_path / f"mean_{axis}.tflite"
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module())
    path.write_bytes(converter.convert())
    report = verify(path)
    graph_errors = [f for f in report.errors if f.check == "graph"]
    assert bool(graph_errors) == batch_statistics, _errors(report)
    if batch_statistics:
        assert graph_errors[0].message.startswith("MEAN over the batch axis")
        assert any("batch dependent" in f.message for f in report.errors)
    else:
        assert report.verdict == "pass"
