"""Training with bare defaults starts from the model family's values: its digits recipe's [training]."""

import argparse
import pathlib

import pytest

from kerasdrop.training.recipe import load_recipe, resolve_recipe
from kerasdrop.zoo import list_models
from kerasdrop.zoo.registry import model_info, training_defaults

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
DIGITS_RECIPES = sorted(MODELS.glob("*_digits.toml"))
TRAINING_KEYS = ("training.epochs", "training.batch_size", "training.learning_rate")


def _training(recipe) -> dict:
    return {key: getattr(recipe.training, key.split(".")[1]) for key in TRAINING_KEYS}


@pytest.mark.parametrize("path", DIGITS_RECIPES, ids=lambda path: path.stem)
def test_each_familys_defaults_are_its_digits_recipes_training(path):
    recipe = load_recipe(path)
    assert training_defaults(recipe.model.name) == _training(recipe)


def test_every_zoo_family_has_training_defaults():
    families = {model_info(name).family for name in list_models()} | {
        model_info("keras_app:MobileNetV2").family
    }
    assert all(training_defaults(name) for name in list_models())
    assert families == {"lenet", "mlp", "simple_cnn", "resnet", "vgg", "alexnet", "keras_app"}


@pytest.mark.parametrize("model", ["lenet5", "mlp"])
def test_bare_defaults_are_the_recipe_for_models_whose_recipe_changes_only_training(model):
    """Their recipes set the model's own head and native input size, so bare defaults train the same run."""
    shipped = load_recipe(MODELS / f"{model}_digits.toml").to_dict()
    bare = resolve_recipe({"model": model, "dataset": "digits"}).to_dict()
    info = model_info(model)
    own_head = {"dense_units": list(info.default_dense_units), "dropout": info.default_dropout}
    shipped["model"] = {key: value for key, value in shipped["model"].items() if own_head.get(key) != value}
    assert {**bare, "expect": {}} == {**shipped, "expect": {}}


def test_given_keys_win_and_the_final_model_picks_the_defaults():
    assert resolve_recipe({"model": "lenet5", "epochs": 3}).training.epochs == 3
    assert (
        resolve_recipe({"model": "lenet5"}, [("training.learning_rate", 0.01)]).training.learning_rate == 0.01
    )
    from_file = resolve_recipe(MODELS / "lenet5_digits.toml", [("model.name", "alexnet")])
    assert _training(from_file) == _training(load_recipe(MODELS / "lenet5_digits.toml")), (
        "the file set them: they stay"
    )
    bare = resolve_recipe({"model": "lenet5"}, [("model.name", "alexnet")])
    assert _training(bare) == training_defaults("alexnet")


def test_cli_says_which_defaults_it_starts_from(capsys):
    from kerasdrop.cli.training import recipe_or_shipped

    args = argparse.Namespace(recipe=None, no_recipe=True, model="lenet5", dataset="digits")
    assert recipe_or_shipped(args) is None
    assert capsys.readouterr().out == (
        "--no-recipe: starting from lenet5's training defaults (epochs 40, batch_size 32, "
        "learning_rate 0.002); flags override them\n"
    )
    args = argparse.Namespace(recipe=None, no_recipe=False, model="mlp", dataset="synthetic")
    assert recipe_or_shipped(args) is None
    assert capsys.readouterr().out.startswith(
        "no recipe for mlp on synthetic: starting from mlp's training defaults"
    )


@pytest.mark.slow
def test_lenet5_with_bare_defaults_reaches_its_documented_accuracy_on_digits(tmp_path):
    """The issue's case: 94.4% with the generic defaults, below the 0.95 models/lenet5_digits.toml documents.

    lenet5 stands for the rest: every family's defaults come from the same table, which the tests above
    keep equal to its digits recipe, whose accuracy is measured in the README; lenet5 is the cheapest
    model that needed other values than the generic ones (about 10 s here).
    """
    from kerasdrop.training import train

    run = train({"model": "lenet5", "dataset": "digits"}, out=tmp_path / "run", verbose=0)
    expected = load_recipe(MODELS / "lenet5_digits.toml").expect.test_accuracy
    assert run.metrics["test_accuracy"] >= expected
