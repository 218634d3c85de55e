"""What a recipe builds: its data sets, its compiled model, and the evaluation of the trained model."""

from __future__ import annotations

import contextlib
import math

from kerasdrop._keras_compat import MULTI_WORKER_STEPS_PER_EXECUTION
from kerasdrop.training import artifacts
from kerasdrop.training.recipe import Recipe


def recipe_datasets(recipe: Recipe):
    """The recipe's train/validation/test pipelines, split exactly as its run was."""
    from kerasdrop.data import load_dataset

    return load_dataset(
        recipe.data.dataset,
        batch_size=recipe.training.batch_size,
        seed=recipe.training.seed,
        validation_fraction=recipe.data.validation_fraction,
        test_fraction=recipe.data.test_fraction,
        data_dir=recipe.data.data_dir,
        image_size=tuple(recipe.data.image_size) if recipe.data.image_size else None,
        train_size=recipe.data.train_size,
        split_seed=recipe.data.split_seed,
        offline=recipe.data.offline,
        image_mode=recipe.data.image_mode,
        skip_bad_images=recipe.data.skip_bad_images,
    )


def recipe_split_arguments(recipe: Recipe) -> dict:
    """`kerasdrop.data.core.load_split`'s arguments for the recipe: what its train/validation/test split depends on."""
    return {
        "spec": recipe.data.dataset,
        "data_dir": recipe.data.data_dir,
        "seed": recipe.training.seed if recipe.data.split_seed is None else recipe.data.split_seed,
        "validation_fraction": recipe.data.validation_fraction,
        "test_fraction": recipe.data.test_fraction,
        "offline": recipe.data.offline,
        # A folder's images are decoded to one size and mode, and its unreadable files are left out.
        "image_size": tuple(recipe.data.image_size) if recipe.data.image_size else None,
        "image_mode": recipe.data.image_mode,
        "skip_bad_images": recipe.data.skip_bad_images,
    }


def _optimizer(name: str, learning_rate: float):
    import keras

    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    if name == "sgd":
        return classes[name](learning_rate=learning_rate, momentum=0.9)
    return classes[name](learning_rate=learning_rate)


def compile_for_training(model, training, *, steps_per_epoch: int) -> None:
    """Compiles with the recipe's optimizer, sparse cross-entropy on the softmax output, and accuracy."""
    model.compile(
        optimizer=_optimizer(training.optimizer, training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # More steps per execution than an epoch has would overshoot Keras' progress bar.
        steps_per_execution=MULTI_WORKER_STEPS_PER_EXECUTION
        if training.strategy == "multi_worker"
        else min(training.steps_per_execution, max(1, steps_per_epoch)),
        # XLA measured slower than plain graphs for these models on CPU (bench/train_throughput.py),
        # and Keras turns it off anyway under op determinism.
        jit_compile=False,
    )


def build_model(recipe: Recipe, info, strategy):
    """The recipe's zoo model for the data set, not compiled; its initial weights come from the global seed."""
    from kerasdrop.zoo import create_model

    with precision_policy(recipe.training.precision), strategy.scope():
        return create_model(
            recipe.model.name,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
            input_range=info.pixel_range,
            dense_units=tuple(recipe.model.dense_units) if recipe.model.dense_units is not None else None,
            dropout=recipe.model.dropout,
            dropout_kind=recipe.model.dropout_kind,
            conv_dropout=recipe.model.conv_dropout,
            **recipe.model.options,
        )


def steps_per_epoch(recipe: Recipe, info) -> int:
    return math.ceil((info.num_train_full or info.num_train) / recipe.training.batch_size)


@contextlib.contextmanager
def precision_policy(policy: str):
    """Keras' global dtype policy set to `policy` inside the block, and restored after it."""
    import keras

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def evaluate_trained(model, data, history: list[dict], monitor: str) -> dict:
    last = history[-1] if history else {}
    status = "nan" if last and math.isnan(last.get("loss", 0.0)) else "complete"
    test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
    # Training accuracy measured in inference mode (dropout off), so the gap compares like with like.
    train_loss, train_accuracy = model.evaluate(data.train, verbose=0)
    validation_loss, validation_accuracy = model.evaluate(data.validation, verbose=0)
    best = artifacts.best_epoch(history, monitor)
    return {
        "status": status,
        "epochs_completed": len(history),
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "validation_accuracy": validation_accuracy,
        "validation_loss": validation_loss,
        "generalization_gap": train_accuracy - validation_accuracy,
        "best_epoch": None if best is None else best["epoch"] + 1,
        f"best_{monitor}": None if best is None else best[monitor],
        "dataset": data.info.to_dict(),
    }


def describe_dropout(model) -> str:
    from kerasdrop.zoo.rewire import head_dropout_layers

    rates = [getattr(layer, "rate", 0.0) for layer in head_dropout_layers(model)]
    return ", ".join(f"{rate:g}" for rate in rates) or "none"
