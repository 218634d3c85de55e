"""`kerasdrop export --image-bytes`: `serving_bytes` takes encoded PNG/JPEG, decodes and resizes in the graph,
and answers what `serving_default` answers to the same decoded pixels; verified; served over REST and gRPC."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

import kerasdrop
from kerasdrop.cli import main
from kerasdrop.errors import InvalidArgumentError
from kerasdrop.exporting import export
from kerasdrop.verification.numerical import TOLERANCE
from tests.serving.conftest import grpc_stubs, rest, running_server

SHAPE = (16, 16, 3)


@pytest.fixture(scope="module")
def rgb_export(tmp_path_factory):
    """An RGB classifier on 0..255 pixels, exported with --image-bytes."""
    import keras

    keras.utils.set_random_seed(5)
    model = kerasdrop.create_model("lenet5", num_classes=4, input_shape=SHAPE, input_range=(0, 255))
    repo = tmp_path_factory.mktemp("repo") / "export"
    return export(model, name="rgb", repo=repo, image_bytes=True, models_config=None), model


def _encoded(pixels, image_format, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _pixels(seed, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


def _signatures(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return loaded.signatures["serving_default"], loaded.signatures["serving_bytes"]


def _run(signature, **inputs):
    import tensorflow as tf

    return {
        key: value.numpy()
        for key, value in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()
    }


def test_serving_bytes_takes_a_batch_of_strings_and_is_verified(rgb_export):
    from kerasdrop.verification.graph import read_saved_model

    result, _ = rgb_export
    signature = read_saved_model(result.path).signature_def["serving_bytes"]
    ((name, info),) = signature.inputs.items()
    assert name == "images_bytes" and info.dtype == 7  # DT_STRING
    assert [dim.size for dim in info.tensor_shape.dim] == [-1]
    assert set(signature.outputs) == {"probabilities", "class_ids"}
    assert signature.method_name == "tensorflow/serving/predict"
    report = json.loads((result.path / "verification.json").read_text())
    messages = [
        f["message"] for f in report["findings"] if f["location"].startswith("signature serving_bytes")
    ]
    assert any(m.startswith("repeatable") for m in messages) and any(
        m.startswith("batch independent") for m in messages
    )
    assert any(
        "serving_bytes on PNG bytes agree with serving_default on the decoded pixels" in m for m in messages
    )
    card = json.loads((result.path / "model_card.json").read_text())
    assert card["export"]["signatures"]["serving_bytes"]["inputs"] == ["images_bytes"]


def test_png_bytes_give_what_the_float_request_of_the_same_pixels_gives(rgb_export):
    result, _ = rgb_export
    serving, serving_bytes = _signatures(result.path)
    pixels = np.stack([_pixels(seed) for seed in range(5)])
    encoded = np.array([_encoded(image, "PNG") for image in pixels], dtype=object)
    from_bytes = _run(serving_bytes, images_bytes=encoded)
    from_floats = _run(serving, images=pixels.astype("float32"))
    np.testing.assert_allclose(from_bytes["probabilities"], from_floats["probabilities"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(from_bytes["class_ids"], from_floats["class_ids"])
    # ...and another image gives other answers, so the comparison above could fail.
    other = _run(serving, images=_pixels(99)[None].astype("float32"))
    assert not np.allclose(other["probabilities"], from_floats["probabilities"][:1], **TOLERANCE)


def test_jpeg_bytes_give_what_the_float_request_of_the_jpeg_decoded_pixels_gives(rgb_export):
    result, _ = rgb_export
    serving, serving_bytes = _signatures(result.path)
    encoded = [_encoded(_pixels(seed), "JPEG", quality=85) for seed in range(4)]
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in encoded])
    from_bytes = _run(serving_bytes, images_bytes=np.array(encoded, dtype=object))
    np.testing.assert_allclose(
        from_bytes["probabilities"],
        _run(serving, images=decoded.astype("float32"))["probabilities"],
        **TOLERANCE,
    )


def test_images_of_another_size_are_resized_in_the_graph(rgb_export):
    import tensorflow as tf

    result, _ = rgb_export
    serving, serving_bytes = _signatures(result.path)
    pixels = _pixels(7, (40, 30, 3))
    resized = tf.image.resize(pixels.astype("float32"), SHAPE[:2], antialias=True).numpy()
    np.testing.assert_allclose(
        _run(serving_bytes, images_bytes=np.array([_encoded(pixels, "PNG")], dtype=object))["probabilities"],
        _run(serving, images=resized[None])["probabilities"],
        **TOLERANCE,
    )


def test_a_model_without_an_image_input_is_refused_with_image_bytes():
    import keras

    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(inputs))
    with pytest.raises(
        InvalidArgumentError,
        match=r"Invalid value received for argument `image_bytes`. Expected a "
        r"model with one float32 input of shape \(batch, height, width, ",
    ):
        export(model, name="flat", repo="unused", image_bytes=True, models_config=None)


@pytest.fixture(scope="module")
def served(rgb_export):
    result, _ = rgb_export
    with running_server(repo=result.path.parent.parent) as server:
        yield server, result


def test_rest_b64_and_grpc_string_requests_answer_like_float_requests(served):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    server, _ = served
    pixels = np.stack([_pixels(seed) for seed in (11, 12)])
    encoded = [_encoded(image, "PNG") for image in pixels]
    status, floats = rest(
        server, "POST", "/v1/models/rgb:predict", {"instances": pixels.astype(float).tolist()}
    )
    assert status == 200
    status, from_b64 = rest(
        server,
        "POST",
        "/v1/models/rgb:predict",
        {
            "signature_name": "serving_bytes",
            "instances": [{"b64": base64.b64encode(data).decode()} for data in encoded],
        },
    )
    assert status == 200, from_b64
    for expected, actual in zip(floats["predictions"], from_b64["predictions"]):
        np.testing.assert_allclose(actual["probabilities"], expected["probabilities"], rtol=0, atol=1e-6)
        assert actual["class_ids"] == expected["class_ids"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "rgb", "serving_bytes"
    request.inputs["images_bytes"].CopyFrom(tf.make_tensor_proto(np.array(encoded, dtype=object)))
    response = grpc_stubs(server)[0].Predict(request, timeout=30)
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]),
        [row["probabilities"] for row in floats["predictions"]],
        rtol=0,
        atol=1e-6,
    )


def test_bytes_that_are_not_an_image_get_400_json(served):
    server, _ = served
    for value in ({"b64": base64.b64encode(b"not an image").decode()}, {"b64": "%%%"}, 3.5):
        status, body = rest(
            server,
            "POST",
            "/v1/models/rgb:predict",
            {"signature_name": "serving_bytes", "instances": [value]},
        )
        assert status == 400 and isinstance(body, dict) and body["error"], (value, status, body)


def test_onnx_backend_names_serving_bytes_as_tf_only(rgb_export):
    result, _ = rgb_export
    data = base64.b64encode(_encoded(_pixels(3), "PNG")).decode()
    with running_server(repo=result.path.parent.parent, backend="onnx") as server:
        status, body = rest(
            server,
            "POST",
            "/v1/models/rgb:predict",
            {"signature_name": "serving_bytes", "instances": [{"b64": data}]},
        )
    assert status == 400
    assert '"serving_bytes" not found' in body["error"] and "--backend tf" in body["error"]


def test_kerasdrop_predict_sends_file_bytes_to_serving_bytes(served, tmp_path, capsys, monkeypatch):
    from kerasdrop.cli.client import ServingClient

    server, result = served
    paths = []
    for seed in (21, 22):
        paths.append(tmp_path / f"image{seed}.png")
        paths[-1].write_bytes(_encoded(_pixels(seed), "PNG"))
    serving, _ = _signatures(result.path)
    expected = _run(serving, images=np.stack([_pixels(seed) for seed in (21, 22)]).astype("float32"))[
        "class_ids"
    ]

    def floats_refused(*args, **kwargs):
        raise AssertionError("predict sent decoded floats although the model has serving_bytes")

    monkeypatch.setattr(ServingClient, "predict", floats_refused)
    for url in (f"http://127.0.0.1:{server.rest_port}", f"grpc://127.0.0.1:{server.grpc_port}"):
        assert main(["predict", "--url", url, "--model", "rgb", *map(str, paths)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(": class ")[1].split(" ")[0] for line in lines] == [str(c) for c in expected]
        assert [line.split(": ")[0] for line in lines] == [str(p) for p in paths]
