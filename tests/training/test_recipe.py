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
    assert path.stem.startswith(recipe.model.name.replace(":", "_").lower()), (
        "files are named <model>_<dataset>"
    )
    shapes = {"digits": (8, 8, 1), "tfds:mnist": (28, 28, 1), "tfds:cifar10": (32, 32, 3)}
    shape = shapes[recipe.data.dataset]
    if recipe.data.image_size:
        shape = (*recipe.data.image_size, shape[2])
    model = kerasdrop.create_model(
        recipe.model.name,
        num_classes=10,
        input_shape=shape,
        dense_units=recipe.model.dense_units,
        dropout=recipe.model.dropout,
        **recipe.model.options,
    )
    assert model.output_shape == (None, 10)
    if recipe.data.dataset == "digits":
        assert recipe.expect.test_accuracy is not None, (
            "digits recipes are measured here and state their accuracy"
        )
    else:  # not run here: a reference's figure with its source, and the times per epoch, never a measured claim
        expect = recipe.expect
        assert (
            expect.test_accuracy is None and expect.reference_accuracy is not None and expect.reference_source
        )
        assert expect.cpu_seconds_per_epoch is not None and expect.gpu_seconds_per_epoch is not None


def test_recipe_round_trips_through_a_file(tmp_path):
    from kerasdrop.training.run import write_recipe

    recipe = resolve_recipe(
        {
            "model": "vgg11",
            "dataset": "synthetic:32x32x3",
            "dropout": [0.5, 0.3],
            "dense_units": [64, 32],
            "epochs": 3,
        }
    )
    recipe.model.options = {"batch_norm": True}
    write_recipe(recipe, tmp_path / "recipe.toml", {"provenance": {"tensorflow": "x"}})
    assert load_recipe(tmp_path / "recipe.toml") == recipe


def test_unknown_key_names_the_key_and_the_close_match(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training]\nepoch = 3\n")
    with pytest.raises(
        RecipeError, match=r"Unknown recipe key 'training.epoch'. Did you mean: training.epochs"
    ) as raised:
        load_recipe(path)
    assert "Valid keys: model.name" in str(raised.value)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[training]\nepochs = 'ten'\n",
            "Invalid value received for recipe key `training.epochs`. Expected an integer. "
            "Received: training.epochs='ten'",
        ),
        ("[model]\ndropout = [0.5, 'x']\n", "Expected a number or a list of numbers"),
        ("[training]\nepochs = true\n", "Expected an integer"),
        ("[trainning]\nepochs = 3\n", "Unknown section [trainning]"),
        ("[training\nepochs = 3\n", "is not valid TOML"),
        (
            "[training]\nepochs = 0\n",
            "Invalid value received for argument `training.epochs`. Expected an integer >= 1",
        ),
        ("[training]\noptimizer = 'lbfgs'\n", "Expected one of adam, adamw, sgd, rmsprop"),
        ("[model]\nname = 'vgg17'\n", "Did you mean: vgg16"),
        ("[data]\ndataset = 'imagenet'\n", "Invalid value received for argument `dataset`"),
        ("[training]\nstrategy = 'tpu'\n", "Expected one of default, mirrored, multi_worker"),
        (
            "[expect]\nreference_accuracy = 99\nreference_source = 'x'\n",
            "Invalid value received for argument `expect.reference_accuracy`. Expected a fraction in (0, 1]",
        ),
        ("[expect]\ntest_accuracy = 0\n", "argument `expect.test_accuracy`. Expected a fraction in (0, 1]"),
        (
            "[expect]\nreference_accuracy = 0.99\n",
            "argument `expect.reference_source`. Expected a non-empty source",
        ),
        (
            "[expect]\nreference_source = 'a paper'\n",
            "Expected a non-empty source (paper or reference implementation) "
            "exactly when expect.reference_accuracy is set",
        ),
        ("[expect]\nreference_accuracy = 0.9\nreference_source = ''\n", "argument `expect.reference_source`"),
        (
            "[expect]\ncpu_seconds_per_epoch = -3\n",
            "argument `expect.cpu_seconds_per_epoch`. Expected a positive number",
        ),
        (
            "[expect]\ngpu_seconds_per_epoch = 'fast'\n",
            "recipe key `expect.gpu_seconds_per_epoch`. Expected a number",
        ),
        (
            "[expect]\nreference_accuracy = 'high'\n",
            "recipe key `expect.reference_accuracy`. Expected a number",
        ),
        ("[data]\noffline = 'yes'\n", "recipe key `data.offline`. Expected true or false"),
        ("[expect]\nreference_acuracy = 0.9\n", "Did you mean: expect.reference_accuracy"),
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


def test_offline_and_reference_keys_load_and_round_trip(tmp_path):
    from kerasdrop.training.run import write_recipe

    path = tmp_path / "r.toml"
    path.write_text(
        "[data]\ndataset = 'cifar10'\noffline = true\n[expect]\nreference_accuracy = 0.93\n"
        "reference_source = 'a paper, table 6'\ncpu_seconds_per_epoch = 1617\ngpu_seconds_per_epoch = 15.0\n"
    )
    recipe = load_recipe(path)
    assert recipe.data.offline is True and recipe.expect.reference_accuracy == 0.93
    assert recipe.expect.cpu_seconds_per_epoch == 1617.0
    write_recipe(recipe, tmp_path / "again.toml", {})
    assert load_recipe(tmp_path / "again.toml") == recipe


def test_a_run_of_a_reference_recipe_prints_both_figures_and_no_verdict():
    from kerasdrop.cli.training import reference_line
    from kerasdrop.training.recipe import ExpectSection

    line = reference_line(
        0.91234, ExpectSection(reference_accuracy=0.9302, reference_source="kuangliu/pytorch-cifar")
    )
    assert line == "test accuracy 0.9123; the recipe's reference reports 0.9302 (kuangliu/pytorch-cifar)"


def test_a_reference_recipe_says_what_to_expect_before_training_and_a_measured_one_says_nothing():
    from kerasdrop.cli.training import expectation_line

    line = expectation_line(load_recipe(MODELS_DIR / "resnet18_cifar10.toml"))
    assert line.startswith(
        "expect: test accuracy about 0.9302 per the recipe's reference (kuangliu/pytorch-cifar README"
    )
    assert line.endswith(
        "; an epoch takes about 1198 s on a 2-core CPU (measured) or 15 s on a GPU (FLOPs estimate, a lower bound) "
        "(bench/recipe_epoch_time.py)"
    )
    assert expectation_line(load_recipe(MODELS_DIR / "lenet5_digits.toml")) is None


@pytest.mark.parametrize(
    "path",
    [p for p in RECIPES if load_recipe(p).expect.gpu_seconds_per_epoch is not None],
    ids=lambda p: p.stem,
)
def test_recipe_epoch_times_are_what_the_models_flops_give(path):
    """The GPU figure is FLOPs-derived, so it is recomputed here; the CPU figure must imply a rate
    (FLOP/s) that a CPU can have, so a typo or a stale model would show."""
    import kerasdrop
    from kerasdrop.training.epoch_time import (
        TRAINING_COST_IN_FORWARD_PASSES,
        examples_per_epoch,
        forward_flops,
        gpu_seconds_per_epoch,
    )

    recipe = load_recipe(path)
    shape = {"tfds:mnist": (28, 28, 1), "tfds:cifar10": (32, 32, 3)}[recipe.data.dataset]
    model = kerasdrop.create_model(
        recipe.model.name,
        num_classes=10,
        input_shape=shape,
        dense_units=recipe.model.dense_units,
        dropout=recipe.model.dropout,
        **recipe.model.options,
    )
    flops = forward_flops(model)
    examples = examples_per_epoch(recipe.data.dataset, recipe.data.validation_fraction)
    assert recipe.expect.gpu_seconds_per_epoch == pytest.approx(
        gpu_seconds_per_epoch(flops, examples), rel=0.01
    )
    cpu_flops_per_second = (
        examples * flops * TRAINING_COST_IN_FORWARD_PASSES / recipe.expect.cpu_seconds_per_epoch
    )
    assert 5e9 < cpu_flops_per_second < 1e12


def test_forward_flops_counts_multiply_adds_twice():
    import keras

    from kerasdrop.training.epoch_time import forward_flops

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)  # 6x6x4 outputs, 3x3x3 each
    x = keras.layers.DepthwiseConv2D(3)(x)  # 4x4x4 outputs, 3x3 each
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)  # 64 -> 10
    model = keras.Model(inputs, outputs)
    assert forward_flops(model) == 2 * (6 * 6 * 4 * 27 + 4 * 4 * 4 * 9 + 64 * 10)


def test_find_recipe_matches_a_data_set_by_any_of_its_names():
    from kerasdrop.training.recipe import find_recipe

    assert find_recipe("simple_cnn", "mnist").name == "simple_cnn_mnist.toml"
    assert find_recipe("simple_cnn", "tfds:mnist").name == "simple_cnn_mnist.toml"
    assert find_recipe("resnet18", "cifar10").name == "resnet18_cifar10.toml"
    assert find_recipe("simple_cnn", "cifar100") is None


@pytest.mark.parametrize("text", ["16x16", "16,16", "16X16"])
def test_an_image_size_written_as_a_shape_is_the_list_it_names(text):
    recipe = recipe_from_dict({"data": {"image_size": text}})
    assert recipe.data.image_size == [16, 16]


def test_a_list_of_integers_written_as_words_is_refused():
    with pytest.raises(RecipeError, match="data.image_size"):
        recipe_from_dict({"data": {"image_size": "sixteen"}})
