"""`tfds:<name>[:<split>]`: a TensorFlow Datasets data set, downloaded and prepared on first use as `tfds.load` does.

`<split>` is the training split (default `train`, any TFDS split spec such as `train[:10%]`);
validation is carved off its end, and the test split is `test` when the data set has one.
With `offline=True` nothing is downloaded: the data set must already be prepared in the data directory.
"""

from __future__ import annotations

from kerasdrop._validation import invalid_argument
from kerasdrop.data.download import default_data_dir, download_and_prepare
from kerasdrop.data.split import Split
from kerasdrop.errors import KerasdropError

_RANGE_BY_DTYPE = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}


class DatasetNotPreparedError(KerasdropError, ValueError):
    """The TFDS data set exists in the catalogue but its files are not in the data directory (offline)."""


def _not_prepared_message(name: str, data_dir: str | None) -> str:
    return (
        f"TFDS data set {name!r} is not prepared in {default_data_dir(data_dir)} and --offline (data.offline) "
        f"forbids downloading it. Drop --offline to download it now, or on a machine with internet run "
        f"`tfds build {name} --data_dir DIR` (or `tfds.builder({name!r}, data_dir=DIR).download_and_prepare()`), "
        f"copy DIR here and pass --data-dir DIR (or set TFDS_DATA_DIR)."
    )


def load_tfds_split(options: str, *, data_dir, seed, validation_fraction, offline: bool = False) -> Split:
    import numpy as np

    name, _, train_split = options.partition(":")
    train_split = train_split or "train"
    builder = _builder(name, data_dir, options)
    if not _is_prepared(builder):
        if offline:
            raise DatasetNotPreparedError(_not_prepared_message(name, data_dir))
        download_and_prepare(builder, name, data_dir)
    try:
        train = builder.as_dataset(split=train_split, as_supervised=True, shuffle_files=False)
    except ValueError as error:
        raise invalid_argument(
            "dataset", f"a valid TFDS split spec for {name} ({error})", f"tfds:{options}"
        ) from None
    info = builder.info

    image_feature = info.features[info.supervised_keys[0]]
    label_feature = info.features[info.supervised_keys[1]]
    shape = tuple(image_feature.shape)
    if len(shape) != 3 or None in shape:
        raise invalid_argument(
            "dataset", "a TFDS image data set with a fixed (height, width, channels)", f"tfds:{options}"
        )
    class_names = tuple(
        getattr(label_feature, "names", None) or [str(i) for i in range(label_feature.num_classes)]
    )
    # Integer images use their dtype's full range; float images are taken to be in [0, 1].
    pixel_range = _RANGE_BY_DTYPE.get(np.dtype(image_feature.np_dtype).name, (0.0, 1.0))

    count = _count(train)
    num_validation = max(1, round(count * validation_fraction))
    validation, train = train.take(num_validation), train.skip(num_validation)
    try:
        test = builder.as_dataset(split="test", as_supervised=True, shuffle_files=False)
        num_test = _count(test)
    except ValueError:
        # No test split: hold out as many examples again from the training split.
        test, train = train.take(num_validation), train.skip(num_validation)
        num_test = num_validation
    num_train = _count(train)
    return Split(
        train=train,
        validation=validation,
        test=test,
        num_train=num_train,
        num_validation=num_validation,
        num_test=num_test,
        input_shape=shape,
        class_names=class_names,
        pixel_range=pixel_range,
    )


def _builder(name: str, data_dir: str | None, options: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise invalid_argument(
            "dataset", "tfds:<name> with a name from the TFDS catalogue", f"tfds:{options}"
        ) from None


def _is_prepared(builder) -> bool:
    import logging

    # TFDS warns "Variant folder ... has no dataset_info.json" for every data set not yet prepared,
    # which reads like a broken copy on the first, normal, use.
    absl_log = logging.getLogger("absl")
    saved = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        return builder.is_prepared()
    finally:
        absl_log.setLevel(saved)


def _count(dataset) -> int:
    import tensorflow as tf

    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))
