"""The `serving_bytes` signature (`kerasdrop export --image-bytes`): encoded JPEG/PNG strings in, decoded
and resized in the graph to the model's input, the same outputs as `serving_default`.

A decoded uint8 pixel v becomes `low + v * (high - low) / 255` in the model's raw pixel range, so
an image of the model's size gives the very numbers a user's float request for it would carry.
"""

from __future__ import annotations

import numpy as np

from kerasdrop._validation import invalid_argument

BYTES_SIGNATURE = "serving_bytes"
CHANNELS = (1, 3, 4)  # what tf.io.decode_image can convert any PNG/JPEG to


def bytes_input_name(float_input_name: str) -> str:
    # TF Serving's REST convention: binary inputs end in `_bytes` and travel as {"b64": ...}.
    return f"{float_input_name}_bytes"


def check_image_model(model) -> tuple[int, int, int]:
    """`(height, width, channels)` of a model taking one float image batch; refuses anything else."""
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    dtype = str(model.inputs[0].dtype) if len(model.inputs) == 1 else None
    if (
        shape is None
        or len(shape) != 4
        or None in shape[1:]
        or shape[3] not in CHANNELS
        or dtype != "float32"
    ):
        raise invalid_argument(
            "image_bytes",
            f"a model with one float32 input of shape (batch, height, width, "
            f"channels) with channels in {CHANNELS}, to decode images into",
            f"{len(model.inputs)} input(s), shape {model.input_shape}, dtype {dtype}",
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def decode_function(model, pixel_range: tuple[float, float]):
    """`encoded (batch,) string -> float32 (batch, height, width, channels)` in the model's pixel range."""
    import tensorflow as tf

    height, width, channels = check_image_model(model)
    low, high = (float(value) for value in pixel_range)

    def decode_one(encoded):
        # JPEG with libjpeg's accurate integer IDCT, as Pillow and libjpeg decode by default (TF's own
        # default, INTEGER_FAST, differs from them by up to 4 levels).
        image = tf.cond(
            tf.io.is_jpeg(encoded),
            lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(encoded, channels=channels, dtype=tf.uint8, expand_animations=False),
        )
        pixels = tf.cast(image, tf.float32)
        same_size = tf.reduce_all(tf.shape(image)[:2] == [height, width])
        # Resizing an image of the model's size would still move values by rounding: skip it then.
        pixels = tf.cond(
            same_size,
            lambda: tf.reshape(pixels, [height, width, channels]),
            lambda: tf.image.resize(pixels, [height, width], antialias=True),
        )
        return low + pixels * ((high - low) / 255.0)

    def decode(encoded):
        return tf.map_fn(
            decode_one, encoded, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32)
        )

    return decode


def bytes_serving_function(model, serve, pixel_range):
    """`serve` (the `serving_default` function) behind the in-graph decoder."""
    decode = decode_function(model, pixel_range)

    def serve_bytes(encoded):
        return serve(decode(encoded))

    return serve_bytes


def bytes_input_signature(float_input_name: str):
    import tensorflow as tf

    return [tf.TensorSpec([None], tf.string, name=bytes_input_name(float_input_name))]


def decoded_pixels(encoded: list[bytes], row_shape, pixel_range) -> np.ndarray:
    """What a user sends as floats for these images: decoded by Pillow, in the model's pixel range.

    Images must already have the model's size (no resize here).
    """
    import io

    from PIL import Image

    low, high = pixel_range
    rows = []
    for data in encoded:
        with Image.open(io.BytesIO(data)) as image:
            mode = {1: "L", 3: "RGB", 4: "RGBA"}[row_shape[-1]]
            array = np.asarray(image.convert(mode), dtype="float32").reshape(row_shape)
        rows.append(low + array * np.float32((high - low) / 255.0))
    return np.stack(rows).astype("float32")


def encode_png(pixels: np.ndarray) -> bytes:
    """One uint8 image (height, width, channels) as PNG bytes (lossless)."""
    import io

    from PIL import Image

    pixels = np.asarray(pixels, dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def check_bytes_parity(version_dir, float_input_name: str, row_shape, pixel_range, report) -> None:
    """`serving_bytes` on PNGs of the model's size equals `serving_default` on the decoded floats."""
    from kerasdrop.verification import parity, runtimes

    loaded = runtimes.load_saved_model(version_dir)
    serve = runtimes.tf2_signature_runtime(loaded.signatures["serving_default"])
    serve_bytes = runtimes.tf2_signature_runtime(loaded.signatures[BYTES_SIGNATURE])
    bytes_name = bytes_input_name(float_input_name)

    def serve_decoded(inputs):
        return serve({float_input_name: decoded_pixels(list(inputs[bytes_name]), row_shape, pixel_range)})

    rng = np.random.default_rng(0)
    batches = {
        size: {
            bytes_name: np.array(
                [encode_png(rng.integers(0, 256, row_shape)) for _ in range(size)], dtype=object
            )
        }
        for size in parity.BATCH_SIZES
    }
    parity.check_parity(
        {
            "serving_default on the decoded pixels": serve_decoded,
            f"{BYTES_SIGNATURE} on PNG bytes": serve_bytes,
        },
        batches,
        report,
        location=f"signature {BYTES_SIGNATURE}",
    )
