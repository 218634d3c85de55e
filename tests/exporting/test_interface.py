"""Export keeps a model's own input and output names; `class_ids` only for softmax outputs (interface.py)."""

import json

import numpy as np
import pytest

from kerasdrop.exporting.interface import serving_interface


def _features():
    import keras

    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="fc1")(inputs)
    return inputs, keras.layers.Dropout(0.5, name="fc1_dropout")(hidden)


def regressor():
    import keras

    inputs, x = _features()
    return keras.Model(inputs, keras.layers.Dense(2, name="value")(x), name="regressor")


def two_outputs():
    import keras

    inputs, x = _features()
    return keras.Model(
        inputs,
        [
            keras.layers.Dense(2, name="value")(x),
            keras.layers.Dense(3, activation="softmax", name="species")(x),
        ],
        name="two_outputs",
    )


def test_a_zoo_classifier_is_published_as_before():
    import kerasdrop

    interface = serving_interface(kerasdrop.create_model("mlp", input_shape=(8, 8, 1), num_classes=10))
    assert (interface.classifier, interface.input_names, interface.published_outputs) == (
        True,
        ["images"],
        ["probabilities", "class_ids"],
    )
    assert "softmax classifier" in interface.describe()


def test_a_regressor_keeps_its_names_and_gets_no_class_ids():
    interface = serving_interface(regressor())
    assert (interface.classifier, interface.input_names, interface.published_outputs) == (
        False,
        ["features"],
        ["value"],
    )
    assert (
        interface.describe()
        == "features -> value (the model's own names; no softmax output, so no class_ids)"
    )


def test_only_the_softmax_output_of_two_gets_class_ids():
    interface = serving_interface(two_outputs())
    assert interface.published_outputs == ["value", "species", "species_class_ids"]
    assert interface.softmax_outputs == ("species",)


@pytest.mark.filterwarnings(
    "ignore:When providing `inputs` as a dict"
)  # keys unlike the tensor names, on purpose
def test_dict_inputs_and_outputs_are_named_by_their_keys_and_unnamed_inputs_by_their_layer():
    import keras

    left, right = keras.Input((2,)), keras.Input((2,), name="right")
    joined = keras.layers.Concatenate()([left, right])
    model = keras.Model({"a": left, "b": right}, {"score": keras.layers.Dense(1)(joined)})
    interface = serving_interface(model)
    assert (interface.input_names, interface.published_outputs) == (["a", "b"], ["score"])
    unnamed = keras.Input((3,))
    model = keras.Model(unnamed, keras.layers.Dense(2, activation="softmax")(unnamed))
    assert serving_interface(model).input_names == [unnamed._keras_history.operation.name]  # "input_layer..."


def test_a_sequential_model_is_named_by_its_layers():
    import keras

    from kerasdrop.exporting.interface import keras_reference

    model = keras.Sequential(
        [keras.Input((4,), name="x"), keras.layers.Dense(3, activation="softmax", name="out")]
    )
    assert serving_interface(model).published_outputs == ["probabilities", "class_ids"]
    regressor = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, name="value")])
    assert serving_interface(regressor).input_names == ["x"]
    outputs = keras_reference(regressor)({"x": np.ones((2, 4), "float32")})
    assert list(outputs) == ["value"] and outputs["value"].shape == (2, 2)


def test_a_linear_last_layer_is_not_a_classifier_even_if_a_softmax_comes_earlier():
    import keras

    inputs = keras.Input((4,), name="x")
    x = keras.layers.Dense(3, activation="softmax", name="gate")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    assert serving_interface(model).published_outputs == ["logits"]


def test_a_subclassed_model_without_declared_inputs_is_refused():
    import keras

    class Bare(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(
        ValueError,
        match="^Invalid value received for argument `model`. Expected a functional or Sequential Keras model",
    ):
        serving_interface(Bare())


def test_mc_samples_on_a_two_output_model_is_refused_before_anything_is_written(tmp_path):
    from kerasdrop.exporting import export

    with pytest.raises(
        ValueError,
        match="^Invalid value received for argument `mc_samples`. Expected None for a "
        "model with several inputs or outputs",
    ):
        export(two_outputs(), name="two", repo=tmp_path / "export", mc_samples=4)
    assert not (tmp_path / "export" / "two").exists()


# --- end to end: exported, verified, served over both backends, predicted --------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A regressor exported from its .keras file by the CLI (with mc_dropout), a two-output model from Python."""
    import keras

    from kerasdrop.cli import main
    from kerasdrop.exporting import export

    keras.utils.set_random_seed(3)
    base = tmp_path_factory.mktemp("names")
    repo, models = base / "export", {"regressor": regressor(), "two": two_outputs()}
    models["regressor"].save(base / "regressor.keras")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert (
            main(
                [
                    "export",
                    str(base / "regressor.keras"),
                    "--name",
                    "regressor",
                    "--repo",
                    str(repo),
                    "--mc-samples",
                    "4",
                ]
            )
            == 0
        )
    result = export(models["two"], name="two", repo=repo)
    return repo, models, printed.getvalue(), result


@pytest.mark.slow
def test_export_says_which_names_it_published(exported):
    _, _, printed, result = exported
    assert (
        "signatures serving_default: features -> value (the model's own names; no softmax output, so no "
        "class_ids); mc_dropout: features -> mean, stddev over 4 passes" in printed
    )
    assert result.interface.published_outputs == ["value", "species", "species_class_ids"]


@pytest.mark.slow
def test_savedmodel_onnx_warmup_and_card_use_the_models_own_names(exported):
    import onnxruntime
    import tensorflow as tf

    from kerasdrop.exporting.warmup import read_warmup

    repo, _, _, _ = exported
    for name, outputs in (("regressor", {"value"}), ("two", {"value", "species", "species_class_ids"})):
        version = repo / name / "1"
        signature = tf.saved_model.load(str(version)).signatures["serving_default"]
        assert set(signature.structured_input_signature[1]) == {"features"}
        assert set(signature.structured_outputs) == outputs
        session = onnxruntime.InferenceSession(
            str(version / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        assert [i.name for i in session.get_inputs()] == ["features"]
        assert {o.name for o in session.get_outputs()} == outputs
        assert {
            key
            for log in read_warmup(version / "assets.extra" / "tf_serving_warmup_requests")
            for key in log.predict_log.request.inputs
        } == {"features"}
        golden = json.loads((version / "golden.json").read_text())
        assert set(golden["outputs"][0]) == set(golden["dtypes"]) == outputs
        card = json.loads((version / "model_card.json").read_text())
        assert card["export"]["signatures"]["serving_default"]["outputs"] == sorted(
            outputs, key=["value", "species", "species_class_ids"].index
        )
        assert card["input"]["name"] == "features"
        assert "classify" not in card["intended_use"]["primary_use"]


@pytest.mark.slow
def test_the_written_artefacts_pass_the_verifier_with_parity_on_every_output(exported):
    from kerasdrop.verification import verify

    repo, _, _, _ = exported
    for name in ("regressor", "two"):
        report = verify(repo / name / "1")
        assert report.ok, report.errors
        parity = [f for f in report.findings if f.check == "parity" and "onnxruntime agree" in f.message]
        assert parity, "the SavedModel and ONNX outputs were compared"
    recorded = json.loads((repo / "two" / "1" / "verification.json").read_text())
    assert any(
        c["check"] == "parity" and c["target"].startswith("keras vs savedmodel") for c in recorded["checks"]
    )


def _expected(model, features):
    outputs = model(features, training=False)
    return outputs if isinstance(outputs, list) else [outputs]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tf", "onnx"])
def test_served_over_rest_and_grpc_by_their_own_names(exported, backend):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tests.serving.conftest import grpc_stubs, rest, running_server

    repo, models, _, _ = exported
    features = np.random.default_rng(0).uniform(-1, 1, (3, 4)).astype("float32")
    value, species = (np.asarray(t) for t in _expected(models["two"], features))
    (regressed,) = (np.asarray(t) for t in _expected(models["regressor"], features))
    with running_server(repo=repo, backend=backend) as server:
        status, body = rest(
            server, "POST", "/v1/models/regressor:predict", {"inputs": {"features": features.tolist()}}
        )
        assert status == 200, body
        np.testing.assert_allclose(
            body["outputs"], regressed, atol=1e-5
        )  # one output: TF Serving omits its name
        status, body = rest(server, "POST", "/v1/models/two:predict", {"instances": features.tolist()})
        assert status == 200, body
        assert set(body["predictions"][0]) == {"value", "species", "species_class_ids"}
        np.testing.assert_allclose([row["value"] for row in body["predictions"]], value, atol=1e-5)
        assert [row["species_class_ids"] for row in body["predictions"]] == list(species.argmax(axis=1))
        prediction, _ = grpc_stubs(server)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "two"
        request.inputs["features"].CopyFrom(tf.make_tensor_proto(features))
        response = prediction.Predict(request, timeout=30)
        assert set(response.outputs) == {"value", "species", "species_class_ids"}
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["species"]), species, atol=1e-5)
        status, body = rest(
            server, "POST", "/v1/models/two:predict", {"inputs": {"images": features.tolist()}}
        )
        assert status == 400 and "features" in body["error"], body


@pytest.mark.slow
def test_kerasdrop_predict_sends_rows_to_the_models_own_input_and_prints_its_outputs(
    exported, tmp_path, capsys
):
    from kerasdrop.cli import main
    from tests.serving.conftest import running_server

    repo, models, _, _ = exported
    features = np.random.default_rng(1).uniform(-1, 1, (2, 4)).astype("float32")
    np.save(tmp_path / "rows.npy", features)
    (regressed,) = (np.asarray(t) for t in _expected(models["regressor"], features))
    capsys.readouterr()
    with running_server(repo=repo) as server:
        for url in (f"http://127.0.0.1:{server.rest_port}", f"grpc://127.0.0.1:{server.grpc_port}"):
            assert main(["predict", "--url", url, "--model", "regressor", str(tmp_path / "rows.npy")]) == 0
            lines = capsys.readouterr().out.splitlines()
            assert lines == [
                f"{tmp_path / 'rows.npy'}[{row}]: value " + " ".join(f"{v:.3f}" for v in regressed[row])
                for row in range(2)
            ]
        assert (
            main(
                [
                    "predict",
                    "--url",
                    f"http://127.0.0.1:{server.rest_port}",
                    "--model",
                    "two",
                    "--signature",
                    "serving_default",
                    str(tmp_path / "rows.npy"),
                ]
            )
            == 0
        )
        assert "species_class_ids" in capsys.readouterr().out
