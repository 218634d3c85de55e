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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run of a small MLP with dropout on the embedded digits (2 epochs), for studies and cards."""
    from kerasdrop.train import train

    return train({"model": "mlp", "dataset": "digits", "epochs": 2, "batch_size": 64, "dense_units": [32],
                  "dropout": 0.5}, out=tmp_path_factory.mktemp("tiny") / "run", verbose=0)


@pytest.fixture(scope="session")
def calibrated_run(tiny_run):
    """`tiny_run` after `kerasdrop calibrate` with few passes: (run, results)."""
    from kerasdrop.train.studies import calibrate

    return tiny_run, calibrate(tiny_run.directory, mc_samples=8, ks=(1, 2, 8), repeats=3)
