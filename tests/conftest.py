"""Test-wide set-up: quiet TensorFlow and fixed seeds, so failures reproduce."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def shared_testdata():
    """TF Serving's own test servables, read from ../shared (CI has it beside the clone)."""
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "tf_serving"
    if not path.is_dir():
        pytest.fail(f"TF Serving test data not found at {path}; it is expected beside the repository")
    return path
