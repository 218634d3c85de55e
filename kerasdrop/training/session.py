"""What the runs of one study share: each data source loaded once, and one compiled model per architecture.

A run reuses the compiled model (and so its traced `fit`/`evaluate` functions) with the weights that
a fresh build from the run's own seed has and a reset optimizer, so it measures what it measures alone.
"""

from __future__ import annotations

import json

from kerasdrop.training.build import (
    build_model,
    compile_for_training,
    precision_policy,
    recipe_datasets,
    recipe_split_arguments,
    steps_per_epoch,
)
from kerasdrop.training.recipe import Recipe

# Recipe keys that change the compiled model or its traced training step; any other key (seed,
# epochs, training-set size, early stopping, monitor) is run state, reset or passed to `fit`.
_COMPILE_KEYS = ("batch_size", "optimizer", "learning_rate", "steps_per_execution", "strategy", "precision")


class TrainingSession:
    """Data splits and compiled models kept across the `train` calls that are given this session.

    `train(recipe)` without a session uses a fresh one, so a run trained alone and the same run
    trained inside a study take the same path: seed, build the model (its initial weights), fit.

    Args:
        reuse: keep splits and compiled models for later runs (False: a session of one run).
    """

    def __init__(self, *, reuse: bool = True):
        self.reuse = reuse
        self._splits: dict[str, list] = {}  # key -> [Split, training labels or None until needed]
        self._models: dict[str, tuple] = {}  # key -> (compiled model, optimizer variables' initial values)
        self.models_compiled = 0

    def datasets(self, recipe: Recipe):
        """The recipe's pipelines (as `recipe_datasets`), from the session's copy of its split."""
        if not self.reuse:
            return recipe_datasets(recipe)
        from kerasdrop.data.core import datasets_from_split, load_split, split_labels

        arguments = recipe_split_arguments(recipe)
        key = json.dumps(arguments, sort_keys=True)
        if key not in self._splits:
            self._splits[key] = [load_split(**arguments), None]
        entry = self._splits[key]
        if recipe.data.train_size is not None and entry[1] is None:
            entry[1] = split_labels(entry[0])
        return datasets_from_split(
            entry[0],
            recipe.data.dataset,
            batch_size=recipe.training.batch_size,
            seed=recipe.training.seed,
            image_size=tuple(recipe.data.image_size) if recipe.data.image_size else None,
            train_size=recipe.data.train_size,
            train_labels=entry[1],
        )

    def compiled_model(self, recipe: Recipe, info, strategy):
        """The recipe's model, compiled, holding the initial weights that its seed gives a fresh build.

        Call after seeding (`keras.utils.set_random_seed`): the fresh build draws the weights (and
        the dropout layers' seeds) exactly as when the model is built only once.
        """
        fresh = build_model(recipe, info, strategy)
        key = _model_key(recipe, info)
        if key in self._models:
            model, optimizer_start = self._models[key]
            _assign(model.variables, fresh.variables)
            _assign(model.optimizer.variables, optimizer_start)
            return model
        with precision_policy(recipe.training.precision), strategy.scope():
            compile_for_training(fresh, recipe.training, steps_per_epoch=steps_per_epoch(recipe, info))
            # Built now rather than in `fit`, so its starting state can be restored for the next run.
            fresh.optimizer.build(fresh.trainable_variables)
        self.models_compiled += 1
        if self.reuse and recipe.training.strategy == "default":
            self._models[key] = (fresh, [variable.numpy() for variable in fresh.optimizer.variables])
        return fresh


def _model_key(recipe: Recipe, info) -> str:
    training = recipe.to_dict()["training"]
    return json.dumps(
        {
            "model": recipe.to_dict()["model"],
            "training": {key: training.get(key) for key in _COMPILE_KEYS},
            "input": [list(info.input_shape), info.num_classes, list(info.pixel_range)],
            "steps_per_epoch": steps_per_epoch(recipe, info),
        },
        sort_keys=True,
    )


def _assign(targets, sources) -> None:
    targets, sources = list(targets), list(sources)
    if [tuple(target.shape) for target in targets] != [
        tuple(getattr(source, "shape", ())) for source in sources
    ]:
        raise AssertionError(
            "a reused model's variables do not match the fresh build's"
        )  # same key, same model
    for target, source in zip(targets, sources):
        target.assign(source)
