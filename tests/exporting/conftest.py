"""Fixtures shared by the export tests."""

import pytest

import kerasdrop


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory):
    """A trained-looking lenet5 on 8x8 digits-range input, saved as .keras."""
    import keras

    keras.utils.set_random_seed(3)
    model = kerasdrop.create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    path = tmp_path_factory.mktemp("model") / "lenet5.keras"
    model.save(path)
    return path
