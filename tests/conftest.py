"""Test-wide set-up: quiet TensorFlow and fixed seeds, so failures reproduce."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

# Where TF Serving's own test servables are read from: a folder laid out like tensorflow/serving's
# tensorflow_serving/servables/tensorflow/testdata. The default is the folder CI keeps beside the clone.
TF_SERVING_TESTDATA_VARIABLE = "KERASDROP_TF_SERVING_TESTDATA"
DEFAULT_TF_SERVING_TESTDATA = (
    pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "tf_serving"
)
# One servable every peer-conformance test needs; its presence tells a real copy from an empty folder.
_MARKER_SERVABLE = "saved_model_half_plus_two_cpu"


@pytest.fixture(autouse=True)
def _seeded():
    import keras

    keras.utils.set_random_seed(1234)
    yield


def _tf_serving_testdata_path():
    configured = os.environ.get(TF_SERVING_TESTDATA_VARIABLE)
    return pathlib.Path(configured).expanduser() if configured else DEFAULT_TF_SERVING_TESTDATA


def _running_in_ci():
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def shared_testdata():
    """TF Serving's own test servables: skipped with how to get them when absent, a failure under CI."""
    path = _tf_serving_testdata_path()
    if (path / _MARKER_SERVABLE).is_dir():
        return path
    reason = (
        f"TF Serving test servables not found at {path}: set {TF_SERVING_TESTDATA_VARIABLE} to a copy of "
        "tensorflow_serving/servables/tensorflow/testdata from https://github.com/tensorflow/serving"
    )
    if _running_in_ci():
        pytest.fail(f"{reason} (CI=true: the peer-conformance tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run of a small MLP with dropout on the embedded digits (2 epochs), for studies and cards."""
    from kerasdrop.training import train

    return train(
        {
            "model": "mlp",
            "dataset": "digits",
            "epochs": 2,
            "batch_size": 64,
            "dense_units": [32],
            "dropout": 0.5,
        },
        out=tmp_path_factory.mktemp("tiny") / "run",
        verbose=0,
    )


@pytest.fixture(scope="session")
def calibrated_run(tiny_run):
    """`tiny_run` after `kerasdrop calibrate` with few passes: (run, results)."""
    from kerasdrop.training.studies import calibrate

    return tiny_run, calibrate(tiny_run.directory, mc_samples=8, ks=(1, 2, 8), repeats=3)
