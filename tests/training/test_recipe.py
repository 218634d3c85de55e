"""Recipe files: strict loading, overrides, and every shipped recipe in models/ being usable."""

import pathlib

import pytest

from kerasdrop.training import RecipeError, load_recipe, resolve_recipe
from kerasdrop.training.recipe import Recipe, parse_override, recipe_from_dict

MODELS_DIR = pathlib.Path(__file__).resolve().parents[2] / "models"
RECIPES = sorted(MODELS_DIR.glob("*.toml"))


def test_there_is_a_recipe_for_every_zoo_family():
    from kerasdrop.zoo import model_info

    families = {model_info(load_recipe(path).model.name).family for path in RECIPES}
    assert families >= {"mlp", "simple_cnn", "lenet", "alexnet", "vgg", "resnet", "keras_app"}


@pytest.mark.parametrize("path", RECIPES, ids=[path.stem for path in RECIPES])
def test_every_shipped_recipe_loads_and_builds_its_model(path):
    import kerasdrop

    recipe = load_recipe(path)
    assert path.stem.startswith(recipe.model.name.replace(":", "_").lower()), "files are named <model>_<dataset>"
    shapes = {"digits": (8, 8, 1), "tfds:mnist": (28, 28, 1), "tfds:cifar10": (32, 32, 3)}
    shape = shapes[recipe.data.dataset]
    if recipe.data.image_size:
        shape = (*recipe.data.image_size, shape[2])
    model = kerasdrop.create_model(recipe.model.name, num_classes=10, input_shape=shape,
                                   dense_units=recipe.model.dense_units, dropout=recipe.model.dropout,
                                   **recipe.model.options)
    assert model.output_shape == (None, 10)
    if recipe.data.dataset == "digits":
        assert recipe.expect.test_accuracy is not None, "digits recipes are measured here and state their accuracy"


def test_recipe_round_trips_through_a_file(tmp_path):
    from kerasdrop.training.run import write_recipe

    recipe = resolve_recipe({"model": "vgg11", "dataset": "synthetic:32x32x3", "dropout": [0.5, 0.3],
                             "dense_units": [64, 32], "epochs": 3})
    recipe.model.options = {"batch_norm": True}
    write_recipe(recipe, tmp_path / "recipe.toml", {"provenance": {"tensorflow": "x"}})
    assert load_recipe(tmp_path / "recipe.toml") == recipe


def test_unknown_key_names_the_key_and_the_close_match(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nepoch = 3\n")
    with pytest.raises(RecipeError, match=r"Unknown recipe key 'training.epoch'. Did you mean: training.epochs") as raised:
        load_recipe(path)
    assert "Valid keys: model.name" in str(raised.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[training]\nepochs = 'ten'\n", "Invalid value received for recipe key `training.epochs`. Expected an integer. Received: training.epochs='ten'"),
        ("[model]\ndropout = [0.5, 'x']\n", "Expected a number or a list of numbers"),
        ("[training]\nepochs = true\n", "Expected an integer"),
        ("[trainning]\nepochs = 3\n", "Unknown section [trainning]"),
        ("[training\nepochs = 3\n", "is not valid TOML"),
        ("[training]\nepochs = 0\n", "Invalid value received for argument `training.epochs`. Expected an integer >= 1"),
        ("[training]\noptimizer = 'lbfgs'\n", "Expected one of adam, adamw, sgd, rmsprop"),
        ("[model]\nname = 'vgg17'\n", "Did you mean: vgg16"),
        ("[data]\ndataset = 'imagenet'\n", "Invalid value received for argument `dataset`"),
        ("[training]\nstrategy = 'tpu'\n", "Expected one of default, mirrored, multi_worker"),
    ],
)
def test_bad_recipe_files_fail_with_a_message_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        load_recipe(path)
    assert message in str(raised.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="Recipe file not found"):
        load_recipe(tmp_path / "nope.toml")


def test_overrides_parse_toml_values_and_plain_strings():
    assert parse_override("training.epochs=5") == ("training.epochs", 5)
    assert parse_override("model.dropout=[0.5, 0.25]") == ("model.dropout", [0.5, 0.25])
    assert parse_override("data.dataset=tfds:mnist:train[:10%]") == ("data.dataset", "tfds:mnist:train[:10%]")
    with pytest.raises(RecipeError, match="Expected key=value"):
        parse_override("training.epochs")


def test_bare_keys_and_flags_resolve_to_their_section():
    recipe = resolve_recipe({"model": "mlp", "dataset": "synthetic", "epochs": 2, "lr": 0.01, "seed": 5})
    assert (recipe.model.name, recipe.data.dataset, recipe.training.epochs) == ("mlp", "synthetic", 2)
    assert (recipe.training.learning_rate, recipe.training.seed) == (0.01, 5)


def test_overrides_do_not_change_the_callers_recipe():
    base = Recipe()
    resolve_recipe(base, [("training.epochs", 99)])
    assert base.training.epochs == Recipe().training.epochs


def test_provenance_section_is_accepted_and_ignored():
    assert recipe_from_dict({"provenance": {"tensorflow": "2.21.0"}}) == recipe_from_dict({})
