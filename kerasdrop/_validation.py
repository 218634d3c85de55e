"""Argument checks shared by every public function, with Keras' one error template.

Every message reads `Invalid value received for argument `x`. Expected ... Received: x=...`,
so tests and users can match the start of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kerasdrop.errors import InvalidArgumentError


def invalid_argument(argument: str, expected: str, received: Any) -> InvalidArgumentError:
    """Returns (does not raise) an InvalidArgumentError (a ValueError) in the shared template."""
    return InvalidArgumentError(
        f"Invalid value received for argument `{argument}`. "
        f"Expected {expected}. Received: {argument}={received!r}"
    )


def is_number(value: Any) -> bool:
    # bool is an int subclass; `dropout=True` is a mistake, not a rate of 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_rate(value: Any, argument: str = "rate") -> float:
    """Returns `value` as a float if it is a valid dropout rate in [0, 1)."""
    if not is_number(value) or math.isnan(value) or not 0.0 <= value < 1.0:
        raise invalid_argument(argument, "a float in [0, 1)", value)
    return float(value)


def check_positive_int(value: Any, argument: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise invalid_argument(argument, f"an integer >= {minimum}", value)
    return value


def check_choice(value: Any, argument: str, choices: Sequence[str]) -> str:
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise invalid_argument(argument, f"one of {listed}", value)
    return value


def parse_shape(text: str) -> tuple[int, ...] | None:
    """`"32x32x3"` (as `kerasdrop models` prints shapes) or `"32,32,3"` -> `(32, 32, 3)`; None unless
    every part is a positive integer. The one reader of shapes written as text."""
    import re

    try:
        shape = tuple(int(part) for part in re.split(r"[xX,]", text.strip()))
    except ValueError:
        return None
    return shape if shape and min(shape) >= 1 else None
