"""The model registry: `register_model`, `list_models` and `create_model`.

Like timm's `_registry.py`: a few private module-level tables filled by a decorator keyed on the
entry function's name. A leaf: it imports no family. Families register themselves when
`kerasdrop.zoo` imports them; a parametric family (`keras_app:<Name>`) registers a prefix resolver.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from kerasdrop._validation import (
    check_positive_int,
    check_rate,
    invalid_argument,
    is_number,
)
from kerasdrop.errors import InvalidArgumentError
from kerasdrop.zoo.head import resolve_head

_model_entrypoints: dict[str, Callable[..., Any]] = {}
_model_info: dict[str, ModelInfo] = {}
_prefix_resolvers: dict[str, PrefixResolver] = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one entry without building it."""

    name: str
    family: str
    # The input a user gets when passing no `input_shape`: the size the architecture was designed for.
    default_input_shape: tuple[int, int, int]
    default_dense_units: tuple[int, ...]
    default_dropout: float
    # Smallest height/width the downsampling path can take; checked before any layer is built.
    min_spatial_size: int
    # Keyword arguments only this family takes (`batch_norm` for VGG), with their defaults.
    family_options: tuple[str, ...] = ()
    description: str = ""


@dataclasses.dataclass(frozen=True)
class PrefixResolver:
    """A parametric family: `<prefix><Name>` for every name `names()` returns (`keras_app:ResNet50`)."""

    prefix: str
    names: Callable[[], Sequence[str]]  # the valid <Name>s
    info: Callable[[str], ModelInfo]  # <Name> -> ModelInfo; raises a ValueError naming close matches
    create: Callable[..., Any]  # (<Name>, **create_model's resolved arguments) -> keras.Model


def register_model_prefix(prefix: str, *, names, info, create) -> None:
    """Registers a parametric family: model names `<prefix><Name>` resolved by the given functions."""
    if prefix in _prefix_resolvers:
        raise InvalidArgumentError(f"Model prefix {prefix!r} is already registered.")
    _prefix_resolvers[prefix] = PrefixResolver(prefix, names, info, create)


def _resolver_for(model_name: Any) -> PrefixResolver | None:
    if not isinstance(model_name, str):
        return None
    return next((r for prefix, r in _prefix_resolvers.items() if model_name.startswith(prefix)), None)


def register_model(
    *,
    default_input_shape: tuple[int, int, int],
    default_dense_units: tuple[int, ...],
    default_dropout: float,
    min_spatial_size: int,
    family_options: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a model entry point under its function name.

    The family is the module the function lives in (`kerasdrop.zoo.vgg` -> `vgg`).

    Args:
        default_input_shape: `(height, width, channels)` used when `create_model` gets none.
        default_dense_units: hidden Dense widths of the default head.
        default_dropout: the default rate after each hidden Dense.
        min_spatial_size: smallest height and width the architecture accepts.
        family_options: names of the family's own keyword arguments, passed through `create_model`.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        if name in _model_entrypoints:
            raise InvalidArgumentError(
                f"Model {name!r} is already registered (by {_model_entrypoints[name].__module__})."
            )
        _model_entrypoints[name] = fn
        _model_info[name] = ModelInfo(
            name=name,
            family=_family_of(fn),
            default_input_shape=tuple(default_input_shape),
            default_dense_units=tuple(default_dense_units),
            default_dropout=default_dropout,
            min_spatial_size=min_spatial_size,
            family_options=tuple(family_options),
            description=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
        )
        return fn

    return decorator


def _family_of(fn: Callable[..., Any]) -> str:
    # A model registered from a script or notebook has no family module: it is its own family.
    module = getattr(fn, "__module__", None) or "__main__"
    return fn.__name__ if module == "__main__" else module.rsplit(".", 1)[-1]


def list_models(pattern: str | Sequence[str] = "*", *, include_keras_apps: bool | None = None) -> list[str]:
    """Returns the registered model names matching a shell pattern, sorted.

    Args:
        pattern: a shell pattern (`"vgg*"`) or a list of them.
        include_keras_apps: also list `keras_app:<Name>` for every keras.applications backbone (and
            every other prefix-registered family). Defaults to True only for a pattern that starts
            with a registered prefix, as there are dozens.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    candidates = list(_model_entrypoints)
    for prefix, resolver in _prefix_resolvers.items():
        wanted = (
            any(p.startswith(prefix) for p in patterns) if include_keras_apps is None else include_keras_apps
        )
        if wanted:
            candidates += [prefix + name for name in resolver.names()]
    return sorted(name for name in candidates if any(fnmatch.fnmatchcase(name, p) for p in patterns))


def model_info(model_name: str) -> ModelInfo:
    """Returns the registry's `ModelInfo` for `model_name` (raises a ValueError naming close matches)."""
    if model_name in _model_info:
        return _model_info[model_name]
    resolver = _resolver_for(model_name)
    if resolver is not None:
        return resolver.info(model_name[len(resolver.prefix) :])
    known = list(_model_entrypoints)
    close = difflib.get_close_matches(str(model_name), known, n=3, cutoff=0.5)
    hint = f"Did you mean: {', '.join(close)}? " if close else ""
    raise invalid_argument(
        "model_name",
        f"a registered model name. {hint}Known models: {', '.join(sorted(known))}"
        + "".join(f", or {prefix}<Name>" for prefix in _prefix_resolvers),
        model_name,
    )


def training_defaults(model_name: str) -> dict[str, Any]:
    """`{recipe key: value}` a training run of `model_name` starts from where its recipe sets nothing."""
    from kerasdrop.zoo.training_defaults import FAMILY_TRAINING_DEFAULTS

    return dict(FAMILY_TRAINING_DEFAULTS.get(model_info(model_name).family, {}))


def create_model(
    model_name: str,
    /,
    *,
    num_classes: int,
    input_shape: Sequence[int] | None = None,
    dense_units: Sequence[int] | None = None,
    dropout: float | Sequence[float] | None = None,
    dropout_kind: str | None = None,
    conv_dropout: float | None = None,
    input_range: tuple[float, float] = (0.0, 255.0),
    name: str | None = None,
    **family_kwargs: Any,
):
    """Builds a registered classifier: the family's trunk, then the Dense + Dropout head.

    Every argument is validated before any layer is built. `None` means the entry's default.

    Args:
        model_name: a name from `list_models()`, or `keras_app:<Name>` (e.g. `keras_app:MobileNetV2`).
        num_classes: number of classes, >= 2. The model outputs softmax probabilities.
        input_shape: `(height, width, channels)` of the raw images.
        dense_units: widths of the hidden Dense layers of the head, e.g. `(512, 256)`.
        dropout: one rate for every hidden Dense, or one per hidden Dense, each in [0, 1).
        dropout_kind: `"standard"`, `"gaussian"`, `"alpha"` or `"none"`.
        conv_dropout: rate of a SpatialDropout2D after each conv block; `None` or 0 adds none.
        input_range: `(low, high)` of the raw pixels the model will receive (digits: `(0, 16)`);
            the model rescales them itself, so served requests carry the same numbers a user has.
        name: the Keras model name (defaults to `model_name`).
        **family_kwargs: options of one family, e.g. `batch_norm=True` for VGG, `weights=` for
            keras_app backbones.

    Returns:
        A functional `keras.Model` whose every layer is named, head layers `fc1`, `fc1_dropout`,
        ..., `predictions`.
    """
    info = model_info(model_name)
    num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
    input_shape = _resolve_input_shape(input_shape, info)
    head = resolve_head(
        dense_units=info.default_dense_units if dense_units is None else dense_units,
        dropout=info.default_dropout if dropout is None else dropout,
        dropout_kind=dropout_kind,
    )
    if conv_dropout is not None:
        conv_dropout = check_rate(conv_dropout, "conv_dropout")
    low_high = _resolve_input_range(input_range)
    unknown = sorted(set(family_kwargs) - set(info.family_options))
    if unknown:
        options = ", ".join(info.family_options) or "none"
        raise invalid_argument(
            unknown[0],
            f"an option of the {info.family} family (its options: {options})",
            family_kwargs[unknown[0]],
        )
    resolver = _resolver_for(model_name)
    if resolver is not None:
        entry = functools.partial(resolver.create, model_name[len(resolver.prefix) :])
    else:
        entry = _model_entrypoints[model_name]
    return entry(
        num_classes=num_classes,
        input_shape=input_shape,
        head=head,
        conv_dropout=conv_dropout or 0.0,
        input_range=low_high,
        name=name or model_name.replace(":", "_"),
        **family_kwargs,
    )


def _resolve_input_shape(input_shape: Sequence[int] | None, info: ModelInfo) -> tuple[int, int, int]:
    if input_shape is None:
        return info.default_input_shape
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise invalid_argument(
            "input_shape", "a tuple of 3 positive ints (height, width, channels)", input_shape
        )
    if min(shape[:2]) < info.min_spatial_size:
        raise invalid_argument(
            "input_shape",
            f"height and width >= {info.min_spatial_size} for {info.name} "
            f"(its downsampling path needs at least that)",
            input_shape,
        )
    return shape


def _resolve_input_range(input_range: Any) -> tuple[float, float]:
    if (
        not isinstance(input_range, (tuple, list))
        or len(input_range) != 2
        or not all(is_number(v) and math.isfinite(v) for v in input_range)
        or not input_range[0] < input_range[1]
    ):
        raise invalid_argument(
            "input_range", "a pair (low, high) of finite numbers with low < high", input_range
        )
    return float(input_range[0]), float(input_range[1])
