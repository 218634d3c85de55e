"""The classifier head every family shares: hidden Dense layers, each followed by a dropout layer.

Layer names are a contract (`fc1`, `fc1_dropout`, ..., `predictions`): `set_dropout` and the
verifier find the head by them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kerasdrop._validation import check_choice, check_rate, invalid_argument, is_number

DROPOUT_KINDS = ("standard", "gaussian", "alpha", "none")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """A validated head: one rate per hidden Dense."""

    dense_units: tuple[int, ...]
    rates: tuple[float, ...]
    kind: str = "standard"

    @property
    def activation(self) -> str:
        # AlphaDropout keeps mean and variance only for self-normalising (selu) activations.
        return "selu" if self.kind == "alpha" else "relu"

    @property
    def kernel_initializer(self) -> str:
        return "lecun_normal" if self.kind == "alpha" else "glorot_uniform"


def resolve_head(
    *, dense_units: Sequence[int], dropout: float | Sequence[float], dropout_kind: str | None
) -> HeadConfig:
    """Validates head arguments and returns a `HeadConfig` with one rate per hidden Dense."""
    if not isinstance(dense_units, (tuple, list)) or not all(
        isinstance(units, int) and not isinstance(units, bool) and units >= 1 for units in dense_units
    ):
        raise invalid_argument("dense_units", "a tuple of positive ints (hidden Dense widths)", dense_units)
    dense_units = tuple(dense_units)
    kind = check_choice("standard" if dropout_kind is None else dropout_kind, "dropout_kind", DROPOUT_KINDS)
    rates = resolve_rates(dropout, len(dense_units))
    return HeadConfig(dense_units=dense_units, rates=rates, kind=kind)


def resolve_rates(dropout: float | Sequence[float], count: int) -> tuple[float, ...]:
    """One rate for all `count` hidden Dense layers, or a list whose length must be `count`."""
    if is_number(dropout):
        return (check_rate(dropout, "dropout"),) * count
    if isinstance(dropout, (tuple, list)):
        if len(dropout) != count:
            raise invalid_argument(
                "dropout",
                f"one rate, or a list of {count} rates (one per hidden Dense layer in dense_units)",
                dropout,
            )
        return tuple(check_rate(rate, "dropout") for rate in dropout)
    raise invalid_argument("dropout", "a float in [0, 1) or a list of them", dropout)


def dropout_layer(kind: str, rate: float, name: str):
    """Returns the layer that follows a hidden Dense.

    `kind="none"` gives an Identity layer rather than no layer, so every head has the same named
    slots and `set_dropout` can turn dropout on later without rewiring the graph.
    """
    import keras

    if kind == "standard":
        return keras.layers.Dropout(rate, name=name)
    if kind == "gaussian":
        return keras.layers.GaussianDropout(rate, name=name)
    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise invalid_argument("kind", f"one of {DROPOUT_KINDS}", kind)


def classifier_head(x: Any, *, num_classes: int, head: HeadConfig) -> Any:
    """Appends `fc{i}` -> `fc{i}_dropout` for each hidden width, then the softmax `predictions`."""
    import keras

    for index, (units, rate) in enumerate(zip(head.dense_units, head.rates), start=1):
        x = keras.layers.Dense(
            units, activation=head.activation, kernel_initializer=head.kernel_initializer, name=f"fc{index}"
        )(x)
        x = dropout_layer(head.kind, rate, f"fc{index}_dropout")(x)
    # float32 even under a mixed-precision policy: softmax probabilities and the loss need it.
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)


def describe_head(model) -> str:
    """One line: `fc1 Dense(512, relu) -> fc1_dropout Dropout(0.5) -> ... -> predictions Dense(10, softmax)`."""
    parts = []
    for layer in model.layers:
        if layer.name.startswith("fc") or layer.name == "predictions":
            config = layer.get_config()
            if "units" in config:
                parts.append(f"{layer.name} Dense({config['units']}, {config['activation']})")
            elif "rate" in config:
                parts.append(f"{layer.name} {type(layer).__name__}({config['rate']:g})")
            else:
                parts.append(f"{layer.name} {type(layer).__name__}")
    return " -> ".join(parts)
