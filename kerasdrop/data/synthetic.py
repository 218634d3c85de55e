"""`synthetic[:HxWxC[:classes]]`: small generated images for tests and benchmarks.

Each class is a bright square at its own place in a grid, on noise: learnable in a few steps,
so tests can assert that training works without any download.
"""

from __future__ import annotations

from kerasdrop._validation import invalid_argument, parse_shape
from kerasdrop.data.split import Split, split_from_arrays

DEFAULT_SHAPE = (16, 16, 1)
DEFAULT_CLASSES = 4
EXAMPLES_PER_CLASS = 128


def parse_synthetic_options(options: str) -> tuple[tuple[int, int, int], int]:
    """`"28x28x1:10"` -> `((28, 28, 1), 10)`; empty parts take the defaults."""
    shape_text, _, classes_text = options.partition(":")
    try:
        shape = (parse_shape(shape_text) or ()) if shape_text else DEFAULT_SHAPE  # 28x28x1 or 28,28,1
        classes = int(classes_text) if classes_text else DEFAULT_CLASSES
    except ValueError:
        shape, classes = (), 0
    if len(shape) != 3 or min(shape) < 1 or min(shape[:2]) < 4 or classes < 2:
        raise invalid_argument(
            "dataset",
            "synthetic[:HxWxC[:classes]] with H, W >= 4 and classes >= 2, e.g. synthetic:28x28x1:10",
            f"synthetic:{options}",
        )
    return shape, classes


def make_synthetic_arrays(shape, classes, examples_per_class=EXAMPLES_PER_CLASS, seed=0):
    """Returns `(images uint8-valued float32 in 0..255, labels int32)`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    height, width, channels = shape
    grid = int(np.ceil(np.sqrt(classes)))
    cell_h, cell_w = max(height // grid, 1), max(width // grid, 1)
    labels = np.repeat(np.arange(classes, dtype="int32"), examples_per_class)
    images = rng.uniform(0, 100, size=(len(labels), height, width, channels)).astype("float32")
    for index, label in enumerate(labels):
        row, col = divmod(int(label), grid)
        images[index, row * cell_h : (row + 1) * cell_h, col * cell_w : (col + 1) * cell_w, :] += 155
    order = rng.permutation(len(labels))
    return np.round(images[order]), labels[order]


def load_synthetic_split(options: str, *, seed, validation_fraction, test_fraction) -> Split:
    shape, classes = parse_synthetic_options(options)
    images, labels = make_synthetic_arrays(shape, classes, seed=seed)
    return split_from_arrays(
        images,
        labels,
        class_names=[f"class_{i}" for i in range(classes)],
        pixel_range=(0.0, 255.0),
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
    )
