"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, no download).

Pixels are integers 0..16 (4x4 blocks of a 32x32 bitmap counted); the split is stratified by seed.
"""

from __future__ import annotations

from kerasdrop.data.split import Split, split_from_arrays

PIXEL_RANGE = (0.0, 16.0)


def load_digits_arrays():
    """Returns `(images (1797, 8, 8, 1) float32, labels (1797,) int32)`."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype("float32")[..., np.newaxis], bunch.target.astype("int32")


def load_digits_split(*, seed, validation_fraction, test_fraction) -> Split:
    images, labels = load_digits_arrays()
    return split_from_arrays(
        images,
        labels,
        class_names=[str(digit) for digit in range(10)],
        pixel_range=PIXEL_RANGE,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
    )
