"""Training recipes: a dataclass per TOML section, loaded strictly and written back fully resolved.

A recipe file (`models/lenet5_digits.toml`) has `[model]`, `[data]`, `[training]` and `[expect]`
sections; a run directory's `recipe.toml` adds `[provenance]` (versions, seed, command line).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import os
import pathlib
import tomllib
import types
import typing
from collections.abc import Sequence
from typing import Any, Union

from kerasdrop._validation import invalid_argument
from kerasdrop.errors import KerasdropError


class RecipeError(KerasdropError, ValueError):
    """A recipe file or override that cannot be used; the message names the key and the fix."""


@dataclasses.dataclass
class ModelSection:
    name: str = "lenet5"  # a name from `kerasdrop models`
    dense_units: list[int] | None = None  # None: the model's default head
    dropout: float | list[float] | None = None  # one rate, or one per hidden Dense
    dropout_kind: str | None = None  # standard | gaussian | alpha | none (None: standard)
    conv_dropout: float | None = None  # SpatialDropout2D after conv blocks (None: off)
    options: dict = dataclasses.field(default_factory=dict)  # family options, e.g. {batch_norm = true}


@dataclasses.dataclass
class DataSection:
    # digits | synthetic[:HxWxC[:classes]] | tfds:<name>[:<split>] | folder:<path>
    # | mnist | fashion_mnist | cifar10 | cifar100 (keras.datasets' names for TFDS's builders)
    dataset: str = "digits"
    data_dir: str | None = None  # TFDS data directory; None: TFDS_DATA_DIR, else ~/tensorflow_datasets
    # true: never download, a TFDS data set not prepared in data_dir is an error; false: download
    # and prepare it on first use, as tfds.load does
    offline: bool = False
    # [height, width] to resize to, for models that need larger inputs; required for a folder whose
    # images differ in size (None: the native, or the folder's common, size)
    image_size: list[int] | None = None
    # rgb | grayscale: what a folder's images are decoded to (None: the mode most of its files have;
    # the others are converted, with a warning naming them)
    image_mode: str | None = None
    # A folder's unreadable files: false: stop at the first, naming it; true: leave them out, counted.
    skip_bad_images: bool = False
    validation_fraction: float = 0.1  # of the training data, held out for validation and best.keras
    test_fraction: float = 0.2  # held out for the test metrics when the source has no test split
    # Train on a stratified subset of this many training examples (None: all); validation and test
    # stay whole, and each epoch repeats the subset to the full split's size (same steps for any size).
    train_size: int | None = None
    split_seed: int | None = None  # seeds the train/validation/test split; None: training.seed


@dataclasses.dataclass
class TrainingSection:
    epochs: int = 20
    batch_size: int = 64  # global batch: split across replicas under a distribution strategy
    optimizer: str = "adam"  # adam | adamw | sgd | rmsprop
    learning_rate: float = 1e-3
    seed: int = 0  # seeds Python, NumPy, TF and the data split; with op determinism, same seed -> same run
    # Batches per compiled step: on a 2-core CPU small models spend most of a step in Python
    # dispatch, so running several per call is the largest single speed-up (bench/train_throughput.py).
    steps_per_execution: int = 32
    early_stopping_patience: int | None = None  # epochs without improvement of `monitor`; None: off
    monitor: str = "val_accuracy"  # the metric best.keras and early stopping follow (maximised)
    strategy: str = "default"  # default | mirrored | multi_worker (TF_CONFIG)
    # Threads each TensorFlow op may use (intra-op and inter-op pools); 0: TensorFlow's default, every
    # usable CPU. The pools are fixed when TensorFlow starts, so it applies to a process's first run.
    # Tiny models (lenet5 on 8x8 digits) train faster on 1 (bench/train_throughput.py).
    cpu_threads: int = 0
    # float32 | mixed_bfloat16. bfloat16 compute doubles conv throughput on CPUs with AVX512-BF16/AMX
    # (bench/train_throughput.py); saved models are converted back to float32 either way.
    precision: str = "float32"


@dataclasses.dataclass
class ExpectSection:
    test_accuracy: float | None = None  # what this recipe reaches, measured with this repo's command
    # For a recipe not run here: the test accuracy its reference reports, and that reference (paper
    # or implementation, with where the figure stands). `kerasdrop train` compares against it too.
    reference_accuracy: float | None = None
    reference_source: str | None = None
    # Time per epoch, as bench/recipe_epoch_time.py printed it: measured on this repo's 2-core CPU (a
    # slice of synthetic data of the recipe's shape), and estimated for a GPU from the model's FLOPs.
    cpu_seconds_per_epoch: float | None = None
    gpu_seconds_per_epoch: float | None = None


@dataclasses.dataclass
class Recipe:
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    training: TrainingSection = dataclasses.field(default_factory=TrainingSection)
    expect: ExpectSection = dataclasses.field(default_factory=ExpectSection)

    def to_dict(self) -> dict:
        """Nested dict with None values dropped (TOML has no null)."""
        return {
            section.name: {
                key: value
                for key, value in dataclasses.asdict(getattr(self, section.name)).items()
                if value is not None
            }
            for section in dataclasses.fields(self)
        }

    def set(self, key: str, value: Any) -> None:
        """Sets `"training.epochs"` (or a bare unique key like `"epochs"`) after checking its type."""
        section_name, name, annotation = _resolve_key(key)
        setattr(getattr(self, section_name), name, _coerce(value, annotation, f"{section_name}.{name}"))
        # Keys a recipe, dict or flag set: the model's training defaults never replace them.
        self.__dict__.setdefault("given_keys", set()).add(f"{section_name}.{name}")

    def apply_model_defaults(self) -> None:
        """Sets the model's registered training defaults (zoo/training_defaults.py) on every key not given."""
        from kerasdrop.zoo.registry import training_defaults

        given = self.__dict__.get("given_keys", set())
        for key, value in training_defaults(self.model.name).items():
            if key not in given:
                section_name, name, _ = _resolve_key(key)
                setattr(getattr(self, section_name), name, value)


OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_bfloat16")
_SECTIONS = {field.name: field.type for field in dataclasses.fields(Recipe)}
# Sections a run directory adds; accepted on load and not used for training.
_INFORMATIONAL_SECTIONS = ("provenance",)


@functools.cache
def _section_fields(section_name: str) -> dict[str, Any]:
    """`{key: type hint}` of one section, in declaration order."""
    section_class = typing.get_type_hints(Recipe)[section_name]
    hints = typing.get_type_hints(section_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(section_class)}


def valid_keys() -> list[str]:
    return [f"{section}.{name}" for section in _SECTIONS for name in _section_fields(section)]


def _resolve_key(key: str) -> tuple[str, str, Any]:
    """`"epochs"` or `"training.epochs"` -> `("training", "epochs", int)`."""
    section_name, dot, name = key.partition(".")
    if not dot:
        # A bare key is accepted when exactly one section has it (`epochs` -> `training.epochs`).
        owners = [section for section in _SECTIONS if key in _section_fields(section)]
        if len(owners) == 1:
            return owners[0], key, _section_fields(owners[0])[key]
        section_name, name = "", key
    fields = _section_fields(section_name) if section_name in _SECTIONS else {}
    if name not in fields:
        by_name = {full.rsplit(".", 1)[1]: full for full in valid_keys()}
        close = difflib.get_close_matches(key, valid_keys(), n=3, cutoff=0.6) or [
            by_name[match] for match in difflib.get_close_matches(name, by_name, n=3, cutoff=0.6)
        ]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise RecipeError(f"Unknown recipe key {key!r}.{hint} Valid keys: {', '.join(valid_keys())}")
    return section_name, name, fields[name]


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Returns `value` converted to `annotation` (int -> float allowed), or raises RecipeError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except RecipeError:
                continue
        raise _type_error(key, annotation, value)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if item_type is int and isinstance(value, str):
            from kerasdrop._validation import parse_shape

            # A shape as text, as the CLI flags and `kerasdrop models` write it: "32x32" or "32,32".
            value = parse_shape(value) or value
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, annotation, value)
        return [_coerce(item, item_type, key) for item in value]
    if annotation is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, float) and math.isnan(value))
        ):
            raise _type_error(key, annotation, value)
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, annotation, value)
        return value
    if annotation in (str, bool, dict):
        if not isinstance(value, annotation):
            raise _type_error(key, annotation, value)
        return value
    raise TypeError(f"recipe field {key} has an unsupported annotation {annotation!r}")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(
            _type_name(option) for option in typing.get_args(annotation) if option is not type(None)
        )
    if origin is list:
        item = typing.get_args(annotation)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(item, str(item))
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dict: "a table",
    }.get(annotation, str(annotation))


def _type_error(key: str, annotation: Any, value: Any) -> RecipeError:
    return RecipeError(
        f"Invalid value received for recipe key `{key}`. Expected {_type_name(annotation)}. "
        f"Received: {key}={value!r}"
    )


def recipe_from_dict(data: dict, *, source: str = "recipe") -> Recipe:
    """Builds a Recipe from nested sections; unknown sections/keys and wrong types are errors."""
    recipe = Recipe()
    for section_name, values in data.items():
        if section_name in _INFORMATIONAL_SECTIONS:
            continue
        if section_name not in _SECTIONS:
            raise RecipeError(
                f"Unknown section [{section_name}] in {source}. Valid sections: "
                f"{', '.join('[' + s + ']' for s in _SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise RecipeError(f"[{section_name}] in {source} must be a table of keys, received {values!r}")
        for key, value in values.items():
            recipe.set(f"{section_name}.{key}", value)
    check_recipe(recipe)
    recipe.apply_model_defaults()
    return recipe


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Reads a recipe TOML file strictly (see `recipe_from_dict`)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise RecipeError(
            f"Recipe file not found: {path}. Expected a TOML file such as models/lenet5_digits.toml."
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path} is not valid TOML: {error}") from None
    return recipe_from_dict(data, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """`"training.epochs=5"` -> `("training.epochs", 5)`; a value that is not TOML is a string."""
    key, equals, raw = text.partition("=")
    if not equals or not key.strip():
        raise RecipeError(f"Invalid --set {text!r}. Expected key=value, e.g. --set training.epochs=5")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def check_recipe(recipe: Recipe) -> None:
    """Value checks beyond types, in the shared template, so a bad recipe fails before any training."""
    training = recipe.training
    for key in ("epochs", "batch_size", "steps_per_execution"):
        if getattr(training, key) < 1:
            raise invalid_argument(f"training.{key}", "an integer >= 1", getattr(training, key))
    if training.cpu_threads < 0:
        raise invalid_argument(
            "training.cpu_threads", "an integer >= 0 (0: every usable CPU)", training.cpu_threads
        )
    if training.optimizer not in OPTIMIZERS:
        raise invalid_argument("training.optimizer", f"one of {', '.join(OPTIMIZERS)}", training.optimizer)
    if training.strategy not in STRATEGIES:
        raise invalid_argument("training.strategy", f"one of {', '.join(STRATEGIES)}", training.strategy)
    if training.precision not in PRECISIONS:
        raise invalid_argument("training.precision", f"one of {', '.join(PRECISIONS)}", training.precision)
    if not training.learning_rate > 0 or math.isinf(training.learning_rate):
        raise invalid_argument("training.learning_rate", "a positive finite number", training.learning_rate)
    if training.early_stopping_patience is not None and training.early_stopping_patience < 1:
        raise invalid_argument(
            "training.early_stopping_patience", "an integer >= 1 or unset", training.early_stopping_patience
        )
    if training.monitor not in ("val_accuracy", "val_loss", "accuracy", "loss"):
        raise invalid_argument(
            "training.monitor", "val_accuracy, val_loss, accuracy or loss", training.monitor
        )
    if recipe.data.train_size is not None and recipe.data.train_size < 1:
        raise invalid_argument(
            "data.train_size",
            "an integer >= 1, or unset for the whole training split",
            recipe.data.train_size,
        )
    from kerasdrop.data import parse_dataset_spec
    from kerasdrop.data.folder import IMAGE_MODES

    kind, _ = parse_dataset_spec(recipe.data.dataset)
    if recipe.data.image_mode is not None and recipe.data.image_mode not in IMAGE_MODES:
        raise invalid_argument(
            "data.image_mode",
            f"one of {', '.join(IMAGE_MODES)}, or unset for the majority's",
            recipe.data.image_mode,
        )
    for key, value, unset in (
        ("image_mode", recipe.data.image_mode, None),
        ("skip_bad_images", recipe.data.skip_bad_images, False),
    ):
        if kind != "folder" and value != unset:
            raise invalid_argument(
                f"data.{key}",
                f"unset for {recipe.data.dataset}: it applies to folder:<path> data sets only",
                value,
            )
    check_expectations(recipe.expect)
    from kerasdrop.zoo.registry import model_info

    model_info(recipe.model.name)


def check_expectations(expect: ExpectSection) -> None:
    """Accuracies are fractions, times positive, and a reference figure names its source."""
    for key in ("test_accuracy", "reference_accuracy"):
        value = getattr(expect, key)
        if value is not None and not 0.0 < value <= 1.0:
            raise invalid_argument(f"expect.{key}", "a fraction in (0, 1], e.g. 0.99 for 99%", value)
    for key in ("cpu_seconds_per_epoch", "gpu_seconds_per_epoch"):
        value = getattr(expect, key)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise invalid_argument(f"expect.{key}", "a positive number of seconds", value)
    if (expect.reference_accuracy is None) != (not expect.reference_source):
        raise invalid_argument(
            "expect.reference_source",
            "a non-empty source (paper or reference implementation) exactly when "
            "expect.reference_accuracy is set",
            expect.reference_source,
        )


def recipe_directories() -> list[pathlib.Path]:
    """Where `models/<model>_<dataset>.toml` recipes are looked up: ./models, then the checkout's models/."""
    checkout = pathlib.Path(__file__).resolve().parents[2] / "models"
    candidates = [pathlib.Path("models"), checkout]
    return [
        path
        for index, path in enumerate(candidates)
        if path.is_dir() and path.resolve() not in [c.resolve() for c in candidates[:index]]
    ]


def find_recipe(model: str, dataset: str) -> pathlib.Path | None:
    """The recipe file that trains exactly `model` on `dataset`, if one ships (None otherwise).

    Names of the same data set match (`mnist` finds the recipe for `tfds:mnist`).
    """
    from kerasdrop.data.core import canonical_dataset_spec

    try:
        wanted = canonical_dataset_spec(dataset)
    except ValueError:
        return None  # train's own error names the bad spec
    for directory in recipe_directories():
        for path in sorted(directory.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if data.get("model", {}).get("name") != model:
                continue
            try:
                if canonical_dataset_spec(data.get("data", {}).get("dataset", "digits")) == wanted:
                    return path
            except ValueError:
                continue
    return None


def resolve_recipe(
    recipe_or_kwargs: Recipe | str | os.PathLike | dict | None, overrides: Sequence[tuple[str, Any]] = ()
) -> Recipe:
    """A Recipe from a Recipe, a TOML path, or a dict (nested sections or bare keys), plus overrides."""
    if isinstance(recipe_or_kwargs, Recipe):
        recipe = copy.deepcopy(recipe_or_kwargs)  # overrides must never change the caller's recipe
    elif isinstance(recipe_or_kwargs, (str, os.PathLike)):
        recipe = load_recipe(recipe_or_kwargs)
    elif isinstance(recipe_or_kwargs, dict) or recipe_or_kwargs is None:
        data = recipe_or_kwargs or {}
        nested = {key: value for key, value in data.items() if isinstance(value, dict) and key != "options"}
        recipe = recipe_from_dict(nested)
        aliases = {"model": "model.name", "lr": "training.learning_rate"}
        for key, value in data.items():
            if key not in nested:
                recipe.set(aliases.get(key, key), value)
    else:
        raise RecipeError(
            f"Expected a Recipe, a recipe file path or a dict. Received: {type(recipe_or_kwargs).__name__}"
        )
    for key, value in overrides:
        recipe.set(key, value)
    check_recipe(recipe)
    recipe.apply_model_defaults()  # after the overrides: `--model` picks whose defaults apply
    return recipe
