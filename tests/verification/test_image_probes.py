"""Signatures that decode images (DT_STRING of encoded PNG/JPEG) are probed with PNGs, so the verifier
proves them repeatable and batch independent like any other, and catches the batch-dependent ones."""

from kerasdrop.verification import verify
from tests.verification.artefacts import save_module


def _image_bytes_model(directory, batch_statistics: bool):
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        def decode(encoded):
            return tf.image.resize(tf.cast(tf.io.decode_png(encoded, channels=3), tf.float32), [4, 4])

        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([4, 4, 3], tf.float32))
        features = tf.reduce_mean(images, axis=[1, 2])
        if batch_statistics:  # normalised by the batch: a row's answer depends on its neighbours
            features = features - tf.reduce_mean(features, axis=0)
        return {"scores": tf.nn.softmax(features)}

    return save_module(module, directory, {"serving_default": serve})


def _messages(report, severity):
    return [
        f.message
        for f in report.findings
        if f.severity == severity and f.location == "signature serving_default"
    ]


def test_an_image_bytes_signature_is_probed_with_pngs_and_proven(tmp_path):
    report = verify(_image_bytes_model(tmp_path / "good", batch_statistics=False))
    assert report.ok, report.to_json()
    passed = _messages(report, "info")
    assert any(m.startswith("repeatable") for m in passed)
    assert any(m.startswith("batch independent: each row alone matches it in a batch of 6") for m in passed)


def test_a_batch_dependent_image_bytes_signature_is_caught(tmp_path):
    report = verify(_image_bytes_model(tmp_path / "bad", batch_statistics=True))
    assert not report.ok
    assert any(m.startswith("batch dependent") for m in _messages(report, "error")), report.to_json()
