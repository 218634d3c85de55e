"""`folder:<path>`: a directory with one sub-folder of images per class (the Keras layout).

Like `keras.utils.image_dataset_from_directory`, classes are the sorted sub-folder names; unlike
it, the split is three-way (train/validation/test, stratified by seed) and images keep their
native 0..255 range. Every file's size and colour mode is read from its header before training:
one mode for all (`image_mode`, default the majority's, with a warning naming the others), one size
(the common one, or `image_size`, which mixed sizes require), and an unreadable file named, or skipped
with `skip_bad_images`. The rules, for users: docs/training-runs.md.
"""

from __future__ import annotations

import collections
import os
import pathlib
import warnings

from kerasdrop._validation import invalid_argument
from kerasdrop.data.split import Split, split_arrays
from kerasdrop.errors import KerasdropError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# What tf.io.decode_image decodes, as PIL names the formats (a .png that is really WebP is not one).
DECODABLE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
IMAGE_MODES = ("rgb", "grayscale")  # data.image_mode / --image-mode
_CHANNELS = {"rgb": 3, "grayscale": 1}
# PIL modes without colour; every other mode (RGB, RGBA, P, CMYK, ...) is decoded as colour.
_GRAYSCALE_PIL_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_NAMES_SHOWN = 3  # file names a warning or error lists before "..."


class BadImageError(KerasdropError, ValueError):
    """An image file of a folder data set that cannot be read; the message names it."""


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
            "dataset",
            f"folder:<path> with images ({', '.join(IMAGE_EXTENSIONS)}) in at least 2 class sub-folders",
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
        relative = pathlib.Path(path).relative_to(directory).as_posix()
        digest.update(f"{relative}\t{os.path.getsize(path)}\n".encode())
    return {"images": len(paths), "files_sha256": digest.hexdigest()}


def _header(path: str) -> tuple[tuple[int, int], str] | str:
    """`((height, width), "rgb" | "grayscale")` from the file's header (PIL opens lazily), or why it
    cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return f"its content is {image.format}, not one of {', '.join(DECODABLE_FORMATS)}"
            width, height = image.size
            return (height, width), "grayscale" if image.mode in _GRAYSCALE_PIL_MODES else "rgb"
    except (OSError, UnidentifiedImageError, ValueError) as error:
        return str(error) or type(error).__name__


def _listed(paths: list[str], root: pathlib.Path) -> str:
    names = [os.path.relpath(path, root) for path in paths[:_NAMES_SHOWN]]
    return ", ".join(names) + (", ..." if len(paths) > _NAMES_SHOWN else "")


def scan_folder(root: str, *, image_size=None, image_mode: str | None = None, skip_bad_images: bool = False):
    """Every image's header read, then the folder's rules applied (module docstring).

    Returns:
        `(paths, labels, class_names, (height, width), mode, skipped)`: the images to train on, the size
        and mode every image is decoded to, and how many unreadable files were skipped.
    """
    if image_mode is not None and image_mode not in IMAGE_MODES:
        raise invalid_argument(
            "image_mode", f"one of {', '.join(IMAGE_MODES)}, or unset for the majority's", image_mode
        )
    paths, labels, class_names = list_images(root)
    directory = pathlib.Path(root).expanduser()
    headers = [_header(path) for path in paths]
    bad = [path for path, header in zip(paths, headers) if isinstance(header, str)]
    if bad:
        if not skip_bad_images:
            reason = headers[paths.index(bad[0])]
            others = f" ({len(bad) - 1} more unreadable: {_listed(bad[1:], directory)})" if bad[1:] else ""
            raise BadImageError(
                f"folder:{root}: {bad[0]} cannot be read as an image: {reason}{others}. "
                "Fix or remove it, or pass --skip-bad-images (data.skip_bad_images = true) "
                "to train without it."
            )
        warnings.warn(
            f"folder:{root}: skipped {len(bad)} unreadable image file(s) (--skip-bad-images): "
            f"{_listed(bad, directory)}",
            stacklevel=2,
        )
        kept = [index for index, header in enumerate(headers) if not isinstance(header, str)]
        paths, labels, headers = ([items[i] for i in kept] for items in (paths, labels, headers))
        if len(set(labels)) < 2:
            raise invalid_argument(
                "dataset",
                "folder:<path> with readable images in at least 2 class sub-folders",
                f"folder:{root} ({len(paths)} readable images in {len(set(labels))} class folders)",
            )
    image_mode = image_mode or _majority_mode(root, directory, paths, [mode for _, mode in headers])
    size = _one_size(root, directory, paths, [size for size, _ in headers], image_size)
    return paths, labels, class_names, size, image_mode, len(bad)


def _majority_mode(root: str, directory: pathlib.Path, paths: list[str], modes: list[str]) -> str:
    """The mode most images have (a tie keeps colour, which grayscale would lose); warns naming the others."""
    counts = collections.Counter(modes)
    mode = "rgb" if counts["rgb"] >= counts["grayscale"] else "grayscale"
    others = [path for path, other in zip(paths, modes) if other != mode]
    if others:
        warnings.warn(
            f"folder:{root}: {len(others)} of {len(paths)} images are not {mode} (the majority's "
            f"mode): {_listed(others, directory)}; converting them to {mode}. Set --image-mode "
            "(data.image_mode) to choose.",
            stacklevel=3,
        )
    return mode


def _one_size(
    root: str, directory: pathlib.Path, paths: list[str], sizes: list, image_size
) -> tuple[int, int]:
    """`image_size`, else the one size every image has; images of several sizes need `image_size`."""
    if image_size is not None:
        return tuple(image_size)
    counts = collections.Counter(sizes)
    if len(counts) == 1:
        return next(iter(counts))
    found = []
    for (height, width), count in counts.most_common():
        if count > _NAMES_SHOWN:
            found.append(f"{height}x{width} ({count} files)")
        else:
            those = [path for path, size in zip(paths, sizes) if size == (height, width)]
            plural = "s" if count > 1 else ""
            found.append(f"{height}x{width} ({count} file{plural}: {_listed(those, directory)})")
    raise invalid_argument(
        "image_size",
        "--image-size H,W (data.image_size) when a folder's images differ "
        f"in size; folder:{root} holds {', '.join(found)}",
        None,
    )


def load_folder_split(
    root: str,
    *,
    seed,
    validation_fraction,
    test_fraction,
    image_size=None,
    image_mode: str | None = None,
    skip_bad_images: bool = False,
) -> Split:
    import numpy as np
    import tensorflow as tf

    paths, labels, class_names, (height, width), mode, skipped = scan_folder(
        root, image_size=image_size, image_mode=image_mode, skip_bad_images=skip_bad_images
    )
    channels = _CHANNELS[mode]
    train, validation, test = split_arrays(
        np.array(paths),
        np.array(labels, dtype="int32"),
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        stratify=min(np.bincount(labels)) >= 3,
    )

    def decode(path, label):
        # decode_image converts the file's own mode to `channels` (gray to RGB, RGBA to RGB, RGB to gray).
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return tf.ensure_shape(image, (height, width, channels)), label

    def dataset(split):
        return tf.data.Dataset.from_tensor_slices(split).map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    return Split(
        train=dataset(train),
        validation=dataset(validation),
        test=dataset(test),
        num_train=len(train[1]),
        num_validation=len(validation[1]),
        num_test=len(test[1]),
        input_shape=(height, width, channels),
        class_names=tuple(class_names),
        pixel_range=(0.0, 255.0),
        skipped_images=skipped,
    )
