"""`folder:<path>`: a directory with one sub-folder of images per class (the Keras layout).

Like `keras.utils.image_dataset_from_directory`, classes are the sorted sub-folder names; unlike
it, the split is three-way (train/validation/test, stratified by seed) and images keep their
native 0..255 range and the first image's size and colour mode.
"""

from __future__ import annotations

import os
import pathlib

from kerasdrop._validation import invalid_argument
from kerasdrop.data.split import Split, split_arrays

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def list_images(root: str) -> tuple[list[str], list[int], list[str]]:
    """Returns `(paths, labels, class_names)` for a class-per-sub-folder directory."""
    directory = pathlib.Path(root).expanduser()
    if not directory.is_dir():
        raise invalid_argument("dataset", "folder:<path> naming an existing directory", f"folder:{root}")
    class_names = sorted(entry.name for entry in directory.iterdir() if entry.is_dir())
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        for path in sorted((directory / class_name).rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(os.fspath(path))
                labels.append(label)
    used = sorted(set(labels))
    if len(used) < 2:
        raise invalid_argument(
            "dataset", f"folder:<path> with images ({', '.join(IMAGE_EXTENSIONS)}) in at least 2 class sub-folders",
            f"folder:{root} (found {len(paths)} images in {len(used)} class folders)",
        )
    return paths, labels, class_names


def folder_identity(root: str) -> dict:
    """The folder's image count and a digest of every image's path (under the root) and byte size."""
    import hashlib

    paths, _, _ = list_images(root)
    directory = pathlib.Path(root).expanduser()
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{pathlib.Path(path).relative_to(directory).as_posix()}\t{os.path.getsize(path)}\n".encode())
    return {"images": len(paths), "files_sha256": digest.hexdigest()}


def load_folder_split(root: str, *, seed, validation_fraction, test_fraction) -> Split:
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    paths, labels, class_names = list_images(root)
    with Image.open(paths[0]) as first:
        width, height = first.size
        channels = 1 if first.mode in ("L", "I", "1") else 3
    train, validation, test = split_arrays(
        np.array(paths), np.array(labels, dtype="int32"), seed=seed,
        validation_fraction=validation_fraction, test_fraction=test_fraction,
        stratify=min(np.bincount(labels)) >= 3,
    )

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, channels)), label

    def dataset(split):
        return tf.data.Dataset.from_tensor_slices(split).map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return Split(
        train=dataset(train), validation=dataset(validation), test=dataset(test),
        num_train=len(train[1]), num_validation=len(validation[1]), num_test=len(test[1]),
        input_shape=(height, width, channels), class_names=tuple(class_names), pixel_range=(0.0, 255.0),
    )
