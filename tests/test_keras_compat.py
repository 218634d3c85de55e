"""The Keras workarounds: applied only inside their context, undone on exit, refused on untested Keras."""

import numpy as np
import pytest

from kerasdrop import _keras_compat


@pytest.mark.parametrize("version", ["3.16.0", "3.1.5", "4.0.0", "3.150.0"])
def test_untested_keras_is_refused_with_what_to_do(version):
    with pytest.raises(
        _keras_compat.UnsupportedKerasVersionError, match=f"Received: keras=={version}"
    ) as error:
        _keras_compat.check_multi_worker_keras(version)
    assert "pip install" in str(error.value)


def test_tested_keras_patch_releases_are_accepted():
    for tested in _keras_compat.MULTI_WORKER_TESTED_KERAS:
        _keras_compat.check_multi_worker_keras(tested + ".0")
        _keras_compat.check_multi_worker_keras(tested + ".7")


def test_multi_worker_fit_restores_keras_and_the_model_on_exit():
    import keras
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    pipeline = tf.data.Dataset.from_tensor_slices(
        (np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"))
    ).batch(2)
    original_reduce = tensorflow_trainer.reduce_per_replica
    original_build = model._maybe_symbolic_build

    with _keras_compat.multi_worker_fit(model, pipeline):
        assert tensorflow_trainer.reduce_per_replica is not original_reduce
        assert model._maybe_symbolic_build() is None
        assert model.built

    assert tensorflow_trainer.reduce_per_replica is original_reduce
    assert "_maybe_symbolic_build" not in vars(model)
    assert model._maybe_symbolic_build.__func__ is original_build.__func__


def test_multi_worker_fit_restores_even_when_fit_raises():
    import keras
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    pipeline = tf.data.Dataset.from_tensor_slices(
        (np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"))
    ).batch(2)
    original_reduce = tensorflow_trainer.reduce_per_replica
    with pytest.raises(RuntimeError, match="boom"):
        with _keras_compat.multi_worker_fit(model, pipeline):
            raise RuntimeError("boom")
    assert tensorflow_trainer.reduce_per_replica is original_reduce
    assert "_maybe_symbolic_build" not in vars(model)
