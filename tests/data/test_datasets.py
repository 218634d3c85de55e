"""Every dataset kind yields batched float32 images in their native range with the right metadata."""

import numpy as np
import pytest

from kerasdrop.data import load_dataset


def _first_batch(pipeline):
    images, labels = next(iter(pipeline))
    return images.numpy(), labels.numpy()


def test_digits_is_the_real_embedded_set_split_deterministically():
    first = load_dataset("digits", batch_size=2000, seed=3)
    info = first.info
    assert (info.num_train, info.num_validation, info.num_test) == (1257, 180, 360)
    assert sum((info.num_train, info.num_validation, info.num_test)) == 1797
    assert info.input_shape == (8, 8, 1) and info.pixel_range == (0.0, 16.0) and info.num_classes == 10
    test_images, test_labels = _first_batch(first.test)
    assert test_images.dtype == np.float32 and test_images.max() == 16.0 and test_images.min() == 0.0
    again_images, again_labels = _first_batch(load_dataset("digits", batch_size=2000, seed=3).test)
    np.testing.assert_array_equal(test_images, again_images)
    other_labels = _first_batch(load_dataset("digits", batch_size=2000, seed=4).test)[1]
    assert not np.array_equal(test_labels, other_labels)
    # Stratified: every digit appears in the test split.
    assert set(test_labels.tolist()) == set(range(10))


def test_train_pipeline_is_shuffled_and_batched():
    data = load_dataset("synthetic", batch_size=16, seed=0)
    images, labels = _first_batch(data.train)
    assert images.shape == (16, 16, 16, 1) and labels.dtype == np.int32
    epoch_one = np.concatenate([batch[1].numpy() for batch in data.train])
    epoch_two = np.concatenate([batch[1].numpy() for batch in data.train])
    assert len(epoch_one) == data.info.num_train
    assert not np.array_equal(epoch_one, epoch_two), "training order should be reshuffled each epoch"
    assert sorted(epoch_one) == sorted(epoch_two)


def test_synthetic_options_and_resize():
    data = load_dataset("synthetic:12x10x3:6", batch_size=8, image_size=(32, 32))
    assert data.info.input_shape == (32, 32, 3) and data.info.num_classes == 6
    images, _ = _first_batch(data.validation)
    assert images.shape == (8, 32, 32, 3)
    assert 0.0 <= images.min() and images.max() <= 255.0


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        data = load_dataset("tfds:mnist", batch_size=8, validation_fraction=0.25)
        assert data.info.input_shape == (28, 28, 1) and data.info.pixel_range == (0.0, 255.0)
        assert data.info.class_names == tuple(str(i) for i in range(10))
        assert (data.info.num_train, data.info.num_validation) == (30, 10)
        images, labels = _first_batch(data.train)
        assert images.shape == (8, 28, 28, 1) and images.dtype == np.float32


def test_tfds_split_spec_selects_the_training_split(monkeypatch):
    # mock_data serves the same examples for every split, so check what is asked of the builder.
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        requested = []
        mocked_as_dataset = tfds.core.DatasetBuilder.as_dataset

        def spy(builder, *args, split=None, **kwargs):
            requested.append((builder.name, split))
            return mocked_as_dataset(builder, *args, split=split, **kwargs)

        monkeypatch.setattr(tfds.core.DatasetBuilder, "as_dataset", spy)
        load_dataset("tfds:mnist:train[:50%]", batch_size=8)
    assert requested == [("mnist", "train[:50%]"), ("mnist", "test")]


def test_unprepared_tfds_dataset_offline_says_how_to_prepare_it(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"TFDS data set 'mnist' is not prepared in .*--offline .*tfds build mnist --data_dir",
    ):
        load_dataset("tfds:mnist", data_dir=str(tmp_path), offline=True)
    assert list(tmp_path.iterdir()) == [], "offline must not start a download"


def test_unknown_tfds_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="^Invalid value received for argument `dataset`.*TFDS catalogue"):
        load_dataset("tfds:not_a_dataset_name", data_dir=str(tmp_path))


def _write_image_folder(root, classes=("cat", "dog", "eel"), per_class=6, size=(10, 12), mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for number in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            pixels = rng.integers(0, 50, size=shape, dtype=np.uint8) + np.uint8(index * 80)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{number}.png")
    (root / "notes.txt").write_text("not an image")


def test_folder_source_reads_class_subfolders(tmp_path):
    _write_image_folder(tmp_path)
    data = load_dataset(f"folder:{tmp_path}", batch_size=64, validation_fraction=0.2, test_fraction=0.2)
    info = data.info
    assert info.class_names == ("cat", "dog", "eel")
    assert info.input_shape == (10, 12, 3) and info.pixel_range == (0.0, 255.0)
    assert info.num_train + info.num_validation + info.num_test == 18
    images, labels = _first_batch(data.train)
    # Class k was drawn in [80k, 80k + 50): the labels must match the pixel values.
    np.testing.assert_array_equal(labels, (images.reshape(len(images), -1).mean(axis=1) // 80).astype(int))


def test_folder_grayscale_images_keep_one_channel(tmp_path):
    _write_image_folder(tmp_path, classes=("a", "b"), mode="L", size=(8, 8))
    assert load_dataset(f"folder:{tmp_path}", batch_size=4).info.input_shape == (8, 8, 1)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("imagenet", "Expected one of digits"),
        ("folder:/no/such/dir", "folder:<path> naming an existing directory"),
        ("synthetic:2x2x1", "synthetic[:HxWxC[:classes]]"),
        ("digits:extra", "digits with no options"),
        ("tfds:", "tfds:<name>"),
    ],
)
def test_bad_dataset_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match="^Invalid value received for argument `dataset`") as raised:
        load_dataset(spec)
    assert message in str(raised.value)


def test_folder_with_one_class_is_refused(tmp_path):
    _write_image_folder(tmp_path, classes=("only",))
    with pytest.raises(ValueError, match="at least 2 class sub-folders"):
        load_dataset(f"folder:{tmp_path}")


def test_train_size_is_a_stratified_subset_and_validation_and_test_stay_whole():
    import numpy as np

    whole = load_dataset("digits", batch_size=2000, seed=0)
    subset = load_dataset("digits", batch_size=2000, seed=5, train_size=100, split_seed=0)
    assert (subset.info.num_train, subset.info.num_train_full) == (100, whole.info.num_train)
    assert (subset.info.num_validation, subset.info.num_test) == (
        whole.info.num_validation,
        whole.info.num_test,
    )
    for split in ("validation", "test"):  # the split seed fixes them, whatever the training seed
        np.testing.assert_array_equal(
            _first_batch(getattr(subset, split))[0], _first_batch(getattr(whole, split))[0]
        )
    images, labels = _first_batch(subset.train)
    # An epoch repeats the subset up to the whole split's size: as many steps as training on all of it.
    assert len(labels) == whole.info.num_train
    examples = np.unique(np.column_stack([images.reshape(len(images), -1), labels]), axis=0)
    assert 95 <= len(examples) <= 100  # 100 examples repeated (digits has a few duplicate images)
    whole_images, whole_labels = _first_batch(whole.train)
    whole_rows = {
        row.tobytes() for row in np.column_stack([whole_images.reshape(len(whole_images), -1), whole_labels])
    }
    assert all(row.tobytes() in whole_rows for row in examples)  # drawn from the training split only
    counts = np.bincount(examples[:, -1].astype(int), minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11  # 100 of 10 balanced classes: stratified


@pytest.mark.parametrize("train_size", [0, 5, 100_000, True])
def test_bad_train_size_is_refused(train_size):
    with pytest.raises(ValueError, match="^Invalid value received for argument `train_size`"):
        load_dataset("digits", train_size=train_size)


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("mnist", (28, 28, 1), 10),
        ("fashion_mnist", (28, 28, 1), 10),
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),
    ],
)
def test_keras_datasets_names_are_their_tfds_builders_with_the_zoos_shapes_and_ranges(name, shape, classes):
    import tensorflow_datasets as tfds

    from kerasdrop.data.core import canonical_dataset_spec

    assert canonical_dataset_spec(name) == f"tfds:{name}"
    assert canonical_dataset_spec(f"{name}:train[:10%]") == f"tfds:{name}:train[:10%]"
    with tfds.testing.mock_data(num_examples=20):
        data = load_dataset(name, batch_size=4)
    # keras.datasets' shapes with the channel axis the zoo expects, uint8 pixels 0..255, its classes
    # (cifar100: the 100 fine labels, keras' default label_mode).
    assert (data.info.input_shape, data.info.pixel_range, data.info.num_classes) == (
        shape,
        (0.0, 255.0),
        classes,
    )
    images, _ = _first_batch(data.train)
    assert images.shape == (4, *shape)
