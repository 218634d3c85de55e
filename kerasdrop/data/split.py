"""What every data source returns (`Split`) and the seeded, stratified split of in-memory arrays.

A leaf of `kerasdrop.data`: sources import it, and `core` (the dispatcher that imports the sources)
imports it too, so no source needs the dispatcher.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Split:
    """One source's unbatched splits before the shared pipeline is applied."""

    train: Any
    validation: Any
    test: Any
    num_train: int
    num_validation: int
    num_test: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    pixel_range: tuple[float, float]
    skipped_images: int | None = None  # unreadable files left out (folder data sets with skip_bad_images)


def split_arrays(images, labels, *, seed, validation_fraction, test_fraction, stratify=True):
    """Deterministic stratified train/validation/test split of in-memory arrays."""
    from sklearn.model_selection import train_test_split

    rest_images, test_images, rest_labels, test_labels = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels if stratify else None
    )
    # validation_fraction is of the whole set, so rescale it to what is left after the test split.
    train_images, val_images, train_labels, val_labels = train_test_split(
        rest_images,
        rest_labels,
        test_size=validation_fraction / (1 - test_fraction),
        random_state=seed,
        stratify=rest_labels if stratify else None,
    )
    return (train_images, train_labels), (val_images, val_labels), (test_images, test_labels)


def split_from_arrays(
    images, labels, *, class_names, pixel_range, seed, validation_fraction, test_fraction
) -> Split:
    import tensorflow as tf

    train, validation, test = split_arrays(
        images, labels, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
    )
    return Split(
        train=tf.data.Dataset.from_tensor_slices(train),
        validation=tf.data.Dataset.from_tensor_slices(validation),
        test=tf.data.Dataset.from_tensor_slices(test),
        num_train=len(train[1]),
        num_validation=len(validation[1]),
        num_test=len(test[1]),
        input_shape=tuple(images.shape[1:]),
        class_names=tuple(class_names),
        pixel_range=pixel_range,
    )
