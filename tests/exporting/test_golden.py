"""`golden.json`: the verified model's answers to its own warmup requests, published inside the version."""

import json

import numpy as np
import pytest

from kerasdrop.exporting.golden import warmup_inputs, write_golden
from kerasdrop.layout import GOLDEN_FILE, read_golden
from kerasdrop.verification.numerical import TOLERANCE
from tests.exporting.test_export import exported  # noqa: F401  (module fixture; small_model_file: conftest)


def _assert_matches(golden_outputs, answers, tolerance):
    assert len(golden_outputs) == len(answers)
    for expected, answer in zip(golden_outputs, answers):
        assert set(expected) == set(answer)
        for name, values in expected.items():
            actual = np.asarray(answer[name])
            if np.issubdtype(actual.dtype, np.integer):
                np.testing.assert_array_equal(np.asarray(values), actual)
            else:
                np.testing.assert_allclose(np.asarray(values, dtype=actual.dtype), actual, **tolerance)


def test_golden_json_follows_the_contract(exported):
    result, _ = exported
    golden = json.loads((result.path / GOLDEN_FILE).read_text())
    assert golden["format"] == 1
    assert golden["requests"] == "assets.extra/tf_serving_warmup_requests"
    assert golden["signature"] == "serving_default"
    assert golden["tolerance"] == TOLERANCE
    assert golden["dtypes"] == {"probabilities": "float32", "class_ids": "int64"}
    # One entry per serving_default PredictRequest of the warmup file (batches of 1 and 8).
    assert [len(entry["class_ids"]) for entry in golden["outputs"]] == [1, 8]
    assert "backends" not in golden
    card = json.loads((result.path / "model_card.json").read_text())
    assert GOLDEN_FILE in card["export"]["files"]


def test_golden_outputs_equal_what_savedmodel_and_onnx_answer_to_the_warmup_requests(exported):
    import onnxruntime
    import tensorflow as tf

    result, _ = exported
    golden = read_golden(result.path)
    requests = warmup_inputs(result.path, "serving_default")
    serving = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    saved = [
        {k: v.numpy() for k, v in serving(**{n: tf.constant(a) for n, a in r.items()}).items()}
        for r in requests
    ]
    _assert_matches(golden["outputs"], saved, golden["tolerance"])
    session = onnxruntime.InferenceSession(
        str(result.path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    onnx = [dict(zip(names, session.run(names, r))) for r in requests]
    _assert_matches(golden["outputs"], onnx, golden["tolerance"])


def test_golden_outputs_of_another_model_do_not_match(exported, tmp_path):
    # The comparison above can fail: a model with other weights gives other golden outputs.
    import shutil

    result, _ = exported
    copy = tmp_path / "1"
    shutil.copytree(result.path, copy)
    write_golden(
        copy,
        lambda inputs: {
            "probabilities": np.full((len(inputs["images"]), 10), 0.1, "float32"),
            "class_ids": np.zeros(len(inputs["images"]), "int64"),
        },
    )
    with pytest.raises(AssertionError):
        _assert_matches(read_golden(copy)["outputs"], read_golden(result.path)["outputs"], TOLERANCE)


def test_other_signatures_and_record_kinds_are_skipped_in_order(tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

    path = tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir()
    logs = []
    for signature, value in (("serving_default", 1.0), ("mc_dropout", 2.0), ("", 3.0)):
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = signature
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.full((1, 2), value, "float32")))
        logs.append(
            prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        )
    logs.insert(
        1,
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classification_pb2.ClassificationRequest())
        ),
    )
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    assert [float(r["x"][0, 0]) for r in warmup_inputs(tmp_path, "serving_default")] == [1.0, 3.0]
    write_golden(tmp_path, lambda inputs: {"y": inputs["x"] * 2})
    golden = read_golden(tmp_path)
    assert golden["outputs"] == [{"y": [[2.0, 2.0]]}, {"y": [[6.0, 6.0]]}] and golden["dtypes"] == {
        "y": "float32"
    }
    assert read_golden(tmp_path / "elsewhere") is None
