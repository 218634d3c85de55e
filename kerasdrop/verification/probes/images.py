"""Encoded-image probes for signatures that decode images (DT_STRING of PNG bytes, e.g. `serving_bytes`).

Decimal-numeral strings are not images, so such a signature is probed with PNGs of float-style
probes (rows of different brightness): the same proofs, repeatable and batch independent, apply.
"""

from __future__ import annotations

import numpy as np

from kerasdrop.verification import probes

DECODE_OPS = (
    "DecodeImage",
    "DecodePng",
    "DecodeJpeg",
    "DecodeAndCropJpeg",
    "DecodeBmp",
    "DecodeGif",
    "DecodeWebP",
)
# Probe images are small and of another size than any model input, so the in-graph resize runs too.
PROBE_SIZE = (probes.OPEN_DIMENSION, probes.OPEN_DIMENSION + 2, 3)


def decodes_images(ops: list[tuple[str, str, object]]) -> bool:
    return any(op in DECODE_OPS for _, op, _ in ops)


def png(pixels: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(tf.constant(np.asarray(pixels, dtype=np.uint8))).numpy()


def image_probes(specs: list[probes.InputSpec], batch: int, seed: int) -> dict[str, np.ndarray]:
    """PNG bytes for every string input (each shaped like its spec), float probes for the others."""
    pixels_spec = probes.InputSpec("pixels", np.dtype("float32"), PROBE_SIZE)
    found = {}
    for offset, spec in enumerate(specs):
        if spec.kind != "string":
            found.update(probes.probe_inputs([spec], 0.0, 1.0, batch=batch, seed=seed + offset))
            continue
        rows = batch if spec.batched else 1
        shape = ((batch,) if spec.batched else ()) + tuple(
            1 if dim is None else dim for dim in spec.row_shape
        )
        count = int(np.prod(shape)) if shape else 1
        images = probes.probe_inputs([pixels_spec], 0.0, 255.0, batch=max(count, rows), seed=seed + offset)[
            "pixels"
        ]
        encoded = [png(np.round(image)) for image in images[:count]]
        found[spec.name] = (
            np.array(encoded, dtype=object).reshape(shape) if shape else np.array(encoded[0], dtype=object)
        )
    return found
