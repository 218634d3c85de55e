"""The dataset dispatcher and the pipeline every source shares (cache, shuffle, batch, prefetch).

Each source returns NumPy arrays or unbatched `tf.data` datasets of `(image, label)` in the source's
native pixel range; this module turns them into three batched pipelines and a `DatasetInfo`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kerasdrop._validation import invalid_argument
from kerasdrop.data.split import Split

SOURCES = (
    "digits",
    "synthetic",
    "tfds:<name>[:<split>]",
    "folder:<path>",
    "mnist | fashion_mnist | cifar10 | cifar100",
)
# keras.datasets' names, so the obvious name works: each is the TFDS builder of the same name, with
# keras.datasets' splits (train / test), native uint8 pixels 0..255 and, for cifar100, its default
# fine labels (TFDS's `label`). Images carry a channel axis (28x28x1), as every zoo model expects.
KERAS_DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the model and the export need to know about a data set."""

    name: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    # Range of the raw pixels: the model rescales them itself, so a served request carries these.
    pixel_range: tuple[float, float]
    num_train: int
    num_validation: int
    num_test: int
    # Set when training used a stratified subset: the whole training split's size. Each epoch then
    # draws this many examples (the subset repeated), so every subset size gets as many steps.
    num_train_full: int | None = None
    skipped_images: int | None = None  # unreadable files a folder data set left out (skip_bad_images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Datasets:
    """Batched `tf.data` pipelines of `(images float32, labels int32)` and their metadata."""

    train: Any
    validation: Any
    test: Any
    info: DatasetInfo


def parse_dataset_spec(spec: str) -> tuple[str, str]:
    """Splits `"tfds:mnist:train[:50%]"` into `("tfds", "mnist:train[:50%]")`; checks the kind.

    A keras.datasets name is its TFDS builder: `"mnist:train[:50%]"` is `("tfds", "mnist:train[:50%]")`.
    """
    if not isinstance(spec, str) or not spec:
        raise invalid_argument("dataset", f"one of {', '.join(SOURCES)}", spec)
    kind, _, rest = spec.partition(":")
    if kind in KERAS_DATASET_NAMES:
        return "tfds", spec
    if kind not in ("digits", "synthetic", "tfds", "folder"):
        import difflib

        close = difflib.get_close_matches(
            kind, ("digits", "synthetic", "tfds", "folder", *KERAS_DATASET_NAMES), n=3, cutoff=0.6
        )
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise invalid_argument("dataset", f"one of {', '.join(SOURCES)}{hint}", spec)
    if kind in ("tfds", "folder") and not rest:
        raise invalid_argument("dataset", f"{kind}:<{'name' if kind == 'tfds' else 'path'}>", spec)
    if kind == "digits" and rest:
        raise invalid_argument("dataset", "digits with no options", spec)
    return kind, rest


def canonical_dataset_spec(spec: str) -> str:
    """The spec every name of the same data means: `"mnist"` -> `"tfds:mnist"`."""
    kind, rest = parse_dataset_spec(spec)
    return f"{kind}:{rest}" if rest else kind


def dataset_identity(spec: str, *, data_dir: str | None = None) -> dict:
    """What tells this data set's contents apart from another's, read cheaply (no pixels decoded).

    A folder's is the digest of its image files' names and sizes; a TFDS data set's, its name and the
    tensorflow-datasets release that prepares it; digits and synthetic data are fixed by the spec and
    the code. Run fingerprints (`kerasdrop.training.identity`) include it.
    """
    kind, rest = parse_dataset_spec(spec)
    identity = {"source": canonical_dataset_spec(spec)}
    if kind == "folder":
        from kerasdrop.data.folder import folder_identity

        identity.update(folder_identity(rest))
    elif kind == "tfds":
        import importlib.metadata

        identity["tensorflow_datasets"] = importlib.metadata.version("tensorflow-datasets")
    return identity


def load_dataset(
    spec: str,
    *,
    batch_size: int = 64,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_dir: str | None = None,
    image_size: tuple[int, int] | None = None,
    shuffle_buffer: int = 10_000,
    cache: bool = True,
    train_size: int | None = None,
    split_seed: int | None = None,
    offline: bool = False,
    image_mode: str | None = None,
    skip_bad_images: bool = False,
) -> Datasets:
    """Loads a data set as train/validation/test pipelines.

    Args:
        spec: `digits`, `synthetic[:HxWxC[:classes]]`, `tfds:<name>[:<split>]`, `folder:<path>`.
        batch_size: examples per batch (global batch under a distribution strategy).
        seed: fixes the split of sources without a validation/test split and the shuffle order.
        validation_fraction: share of the training examples held out for validation.
        test_fraction: share held out for testing when the source has no test split.
        data_dir: TFDS data directory (default: `TFDS_DATA_DIR`, else `~/tensorflow_datasets`); a TFDS
            data set not prepared there is downloaded and prepared into it on first use.
        image_size: `(height, width)` to resize to, for models whose pooling needs larger inputs.
        shuffle_buffer: shuffle buffer size for the training pipeline.
        cache: keep decoded examples in memory after the first epoch.
        train_size: train on a stratified subset of this many training examples (None: all);
            validation and test stay whole. An epoch repeats the subset up to the full split's size.
        split_seed: seed of the train/validation/test split (None: `seed`), so runs with different
            seeds (and subsets, drawn with `seed`) share one fixed validation and test split.
        offline: never download: a TFDS data set that is not prepared in `data_dir` is an error.
        image_mode: `folder:` only: `"rgb"` or `"grayscale"`, what every image is decoded to (None: the
            mode most of the folder's files have).
        skip_bad_images: `folder:` only: leave out (and count) files that cannot be read, instead of
            stopping at the first.

    Returns:
        A `Datasets` with batched, prefetched pipelines and a `DatasetInfo`.
    """
    parse_dataset_spec(spec)
    _check_loading_arguments(
        batch_size=batch_size,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        image_size=image_size,
        train_size=train_size,
    )
    split = load_split(
        spec,
        seed=seed if split_seed is None else split_seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        data_dir=data_dir,
        offline=offline,
        image_size=image_size,
        image_mode=image_mode,
        skip_bad_images=skip_bad_images,
    )
    return datasets_from_split(
        split,
        spec,
        batch_size=batch_size,
        seed=seed,
        image_size=image_size,
        shuffle_buffer=shuffle_buffer,
        cache=cache,
        train_size=train_size,
    )


def load_split(
    spec: str,
    *,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_dir: str | None = None,
    offline: bool = False,
    image_size: tuple[int, int] | None = None,
    image_mode: str | None = None,
    skip_bad_images: bool = False,
) -> Split:
    """The source's unbatched train/validation/test `Split`, split with `seed` (see `load_dataset`).

    A study loads it once and builds each run's pipelines from it with `datasets_from_split`.
    A folder's images are decoded at `image_size` (which mixed sizes require); other sources are resized
    by the pipeline.
    """
    kind, rest = parse_dataset_spec(spec)
    _check_loading_arguments(
        validation_fraction=validation_fraction, test_fraction=test_fraction, image_size=image_size
    )
    if kind != "folder" and (image_mode is not None or skip_bad_images):
        option = "image_mode" if image_mode is not None else "skip_bad_images"
        raise invalid_argument(
            option,
            "unset: it applies to folder:<path> data sets only",
            image_mode if image_mode is not None else skip_bad_images,
        )
    if kind == "folder":
        from kerasdrop.data.folder import load_folder_split

        return load_folder_split(
            rest,
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            image_size=image_size,
            image_mode=image_mode,
            skip_bad_images=skip_bad_images,
        )
    return _load_split(
        kind,
        rest,
        seed=seed,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        data_dir=data_dir,
        offline=offline,
    )


def datasets_from_split(
    split: Split,
    spec: str,
    *,
    batch_size: int = 64,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    shuffle_buffer: int = 10_000,
    cache: bool = True,
    train_size: int | None = None,
    train_labels=None,
) -> Datasets:
    """`load_dataset`'s pipelines and `DatasetInfo` from a loaded `split` (`spec` names it in the info).

    `train_labels`: the split's training labels (`split_labels(split)`), when the caller keeps them,
    so a stratified subset does not read the training split again.
    """
    _check_loading_arguments(batch_size=batch_size, image_size=image_size, train_size=train_size)
    num_train_full = None
    if train_size is not None:
        num_train_full = split.num_train
        split = stratified_subset(split, train_size, seed=seed, labels=train_labels)
    input_shape = split.input_shape
    if image_size is not None:
        input_shape = (image_size[0], image_size[1], input_shape[2])
    pipelines = [
        batched_pipeline(
            dataset,
            batch_size=batch_size,
            seed=seed,
            shuffle=(name == "train"),
            cache=cache,
            image_size=image_size,
            shuffle_buffer=shuffle_buffer,
            examples_per_epoch=num_train_full if name == "train" else None,
        )
        for name, dataset in (("train", split.train), ("validation", split.validation), ("test", split.test))
    ]
    info = DatasetInfo(
        name=spec,
        input_shape=tuple(input_shape),
        class_names=tuple(split.class_names),
        pixel_range=tuple(float(v) for v in split.pixel_range),
        num_train=split.num_train,
        num_validation=split.num_validation,
        num_test=split.num_test,
        num_train_full=num_train_full,
        skipped_images=split.skipped_images,
    )
    return Datasets(*pipelines, info=info)


def _check_loading_arguments(
    *, batch_size=1, validation_fraction=0.1, test_fraction=0.1, image_size=None, train_size=None
) -> None:
    for argument, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 0.5:
            raise invalid_argument(argument, "a fraction in (0, 0.5)", value)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise invalid_argument("batch_size", "an integer >= 1", batch_size)
    if train_size is not None and (
        not isinstance(train_size, int) or isinstance(train_size, bool) or train_size < 1
    ):
        raise invalid_argument("train_size", "an integer >= 1 or None (all)", train_size)
    if image_size is not None and (
        len(image_size) != 2 or not all(isinstance(v, int) and v >= 1 for v in image_size)
    ):
        raise invalid_argument("image_size", "(height, width) as two positive ints", image_size)


def _load_split(kind: str, rest: str, *, seed, validation_fraction, test_fraction, data_dir, offline):
    """The source's own unbatched splits (`Split`); each source module is imported only when used."""
    if kind == "digits":
        from kerasdrop.data.digits import load_digits_split

        return load_digits_split(
            seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
        )
    if kind == "synthetic":
        from kerasdrop.data.synthetic import load_synthetic_split

        return load_synthetic_split(
            rest, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction
        )
    if kind == "tfds":
        from kerasdrop.data.tfds import load_tfds_split

        return load_tfds_split(
            rest, data_dir=data_dir, seed=seed, validation_fraction=validation_fraction, offline=offline
        )
    raise AssertionError(f"load_split reads {kind} data sets itself")


def batched_pipeline(
    dataset,
    *,
    batch_size,
    seed,
    shuffle,
    cache=True,
    image_size=None,
    shuffle_buffer=10_000,
    examples_per_epoch=None,
):
    """float32 images and int32 labels; cached after the first pass, shuffled (seeded), batched, prefetched.

    With `examples_per_epoch`, the (subset) dataset is repeated and cut to that many examples per epoch.

    Measured in bench/train_throughput.py: caching and prefetching, with several steps per
    execution, are what make training faster than `fit` on NumPy arrays on a 2-core CPU.
    """
    import tensorflow as tf

    def to_model_input(image, label):
        image = tf.cast(image, tf.float32)
        if image_size is not None:
            # Bilinear resize keeps the native pixel range the model expects.
            image = tf.image.resize(image, image_size)
        return image, tf.cast(label, tf.int32)

    dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if examples_per_epoch is not None:
        dataset = dataset.repeat().take(examples_per_epoch)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def split_labels(split: Split):
    """The training split's labels as one NumPy array, read in large batches (not example by example)."""
    import numpy as np

    labels = split.train.map(lambda image, label: label).batch(65_536)
    return np.concatenate([np.asarray(batch) for batch in labels.as_numpy_iterator()]).astype(np.int64)


def stratified_subset(split: Split, train_size: int, *, seed: int, labels=None) -> Split:
    """The split with its training part cut to `train_size` examples, every class kept in proportion.

    `labels`: the training labels (`split_labels(split)`) when already known.
    """
    import numpy as np
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    if train_size > split.num_train:
        raise invalid_argument(
            "train_size", f"at most the {split.num_train} examples of the training split", train_size
        )
    if train_size == split.num_train:
        return split
    labels = split_labels(split) if labels is None else labels
    classes = len(np.unique(labels))
    if train_size < classes:
        raise invalid_argument("train_size", f"at least one example per class ({classes})", train_size)
    kept, _ = train_test_split(
        np.arange(len(labels)), train_size=train_size, random_state=seed, stratify=labels
    )
    keep = tf.constant(np.isin(np.arange(len(labels)), kept))

    def kept_example(index, example):
        return keep[index]

    def without_index(index, example):
        return example

    train = split.train.enumerate().filter(kept_example).map(without_index)
    return dataclasses.replace(split, train=train, num_train=train_size)
