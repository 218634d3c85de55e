"""A `TrainingSession`'s runs share one compiled model per architecture: traced once, each run as if alone."""

import pytest

from kerasdrop.training import train
from kerasdrop.training.session import TrainingSession

BASE = {
    "model": "mlp",
    "dataset": "synthetic",
    "epochs": 2,
    "batch_size": 32,
    "dense_units": [16],
    "dropout": 0.5,
}


def _overrides(size, seed):
    return [("data.train_size", size), ("training.seed", seed), ("data.split_seed", 0)]


@pytest.fixture
def traces(monkeypatch):
    """How often Keras' train and test steps were traced: Python in a step runs only while TF traces it."""
    import keras

    counts = {"train": 0, "test": 0}
    original_train_step, original_test_step = keras.Model.train_step, keras.Model.test_step

    def train_step(self, data):
        counts["train"] += 1
        return original_train_step(self, data)

    def test_step(self, data):
        counts["test"] += 1
        return original_test_step(self, data)

    monkeypatch.setattr(keras.Model, "train_step", train_step)
    monkeypatch.setattr(keras.Model, "test_step", test_step)
    return counts


def test_runs_of_a_session_trace_fit_and_evaluate_once(tmp_path, traces):
    session = TrainingSession()
    after_each_run = []
    for index, (size, seed) in enumerate([(20, 0), (40, 1), (None, 2)]):  # other sizes and seeds, one model
        train(
            dict(BASE),
            out=tmp_path / str(index),
            verbose=0,
            backup=False,
            session=session,
            overrides=_overrides(size, seed),
        )
        after_each_run.append(dict(traces))
    assert after_each_run[0]["train"] > 0 and after_each_run[0]["test"] > 0
    assert after_each_run[1:] == [after_each_run[0]] * 2, "a later run of the session traced its steps again"
    assert session.models_compiled == 1
    # The count does see retracing: the same run without the session builds and traces its own model.
    train(dict(BASE), out=tmp_path / "alone", verbose=0, backup=False, overrides=_overrides(40, 1))
    assert traces["train"] > after_each_run[-1]["train"] and traces["test"] > after_each_run[-1]["test"]


def test_a_session_compiles_one_model_per_architecture(tmp_path):
    session = TrainingSession()
    for index, dropout in enumerate([0.0, 0.5, 0.0]):
        train(
            dict(BASE),
            out=tmp_path / str(index),
            verbose=0,
            backup=False,
            session=session,
            overrides=[("model.dropout", dropout)],
        )
    assert session.models_compiled == 2
