"""Every workaround for a Keras/TensorFlow defect, in one place, each guarded by the versions it was tested on.

Each is applied only where it is needed, as a context manager that restores what it changed on exit,
and names the upstream issue it works around. When Keras moves past the tested versions, the guard
raises with what to do, instead of silently patching code that may have changed.
"""

from __future__ import annotations

import contextlib

from kerasdrop.errors import KerasdropError

# Keras versions the multi-worker workarounds below were written against and tested with
# (tests/training/test_multi_worker.py trains two local workers through them).
MULTI_WORKER_TESTED_KERAS = ("3.15",)

# Keras 3.15's multi-step train function fails under MultiWorkerMirroredStrategy ("You must feed a
# value for placeholder tensor 'while/.../Placeholder'"), so multi-worker runs one step per call.
# Upstream: https://github.com/keras-team/keras/issues/20585 (Keras 3 and MultiWorkerMirroredStrategy).
MULTI_WORKER_STEPS_PER_EXECUTION = 1


class UnsupportedKerasVersionError(KerasdropError, RuntimeError):
    """The installed Keras is newer or older than the versions a workaround was tested on."""


def check_multi_worker_keras(version: str | None = None) -> None:
    """Raises `UnsupportedKerasVersionError` unless Keras is a version the workarounds were tested on."""
    if version is None:
        import keras

        version = keras.__version__
    if not any(version == tested or version.startswith(tested + ".") for tested in MULTI_WORKER_TESTED_KERAS):
        raise UnsupportedKerasVersionError(
            f"training.strategy = multi_worker relies on workarounds for Keras "
            f"{', '.join(MULTI_WORKER_TESTED_KERAS)} (see kerasdrop/_keras_compat.py). Received: keras=={version}. "
            f"Install a tested Keras (pip install 'keras=={MULTI_WORKER_TESTED_KERAS[-1]}.*'), or check whether "
            "https://github.com/keras-team/keras/issues/20585 is fixed and update MULTI_WORKER_TESTED_KERAS."
        )


@contextlib.contextmanager
def multi_worker_fit(model, train_pipeline):
    """Lets `model.fit` run under MultiWorkerMirroredStrategy on the tested Keras versions.

    1. `fit` pre-builds by reducing the first distributed batch with `strategy.reduce("MEAN", ...)`,
       which fails eagerly ("Attempt to convert a value (PerReplica...) to a Tensor";
       https://github.com/keras-team/keras/issues/20585). The build only needs shapes, so one
       undistributed batch builds the model, and fit's own pre-build is skipped while inside.
    2. Each step's logs are reduced with `strategy.reduce("MEAN", v, axis=0)`, which fails for the
       scalar loss and metrics ("Invalid reduction dimension 0 for input with 0 dimensions";
       https://github.com/tensorflow/tensorflow/issues/72388). Scalars are reduced over replicas only.

    Both changes are undone on exit: the model's own `_maybe_symbolic_build` and Keras'
    `reduce_per_replica` are restored.
    """
    check_multi_worker_keras()
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    images, labels = next(iter(train_pipeline))
    model._symbolic_build(data_batch=(images, labels))
    had_instance_attribute = "_maybe_symbolic_build" in vars(model)
    previous_build = vars(model).get("_maybe_symbolic_build")
    original_reduce = tensorflow_trainer.reduce_per_replica

    def skip_symbolic_build(iterator=None, data_batch=None):
        return None

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tensorflow_trainer._collective_all_reduce_multi_worker(strategy):
            import tensorflow as tf

            def reduce(value):
                if not isinstance(value, tf.distribute.DistributedValues):
                    return value
                rank = strategy.experimental_local_results(value)[0].shape.rank
                return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

            return tf.nest.map_structure(reduce, values)
        return original_reduce(values, strategy, reduction)

    # Keras tracks attributes set on a model; plain object.__setattr__ keeps this out of its tracking.
    object.__setattr__(model, "_maybe_symbolic_build", skip_symbolic_build)
    tensorflow_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield model
    finally:
        tensorflow_trainer.reduce_per_replica = original_reduce
        if had_instance_attribute:
            object.__setattr__(model, "_maybe_symbolic_build", previous_build)
        else:
            object.__delattr__(model, "_maybe_symbolic_build")
