"""Pieces the conv families share: the input stem and the arithmetic of downsampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def input_rescaling(input_range: tuple[float, float]):
    """The `input_rescaling` layer every zoo model starts with: raw pixels in `input_range` to [0, 1].

    A contract: the verifier reads a model's pixel range back from this layer's scale and offset.
    """
    import keras

    low, high = input_range
    return keras.layers.Rescaling(
        scale=1.0 / (high - low), offset=-low / (high - low), name="input_rescaling"
    )


def model_input(input_shape: tuple[int, int, int], input_range: tuple[float, float]) -> tuple[Any, Any]:
    """Returns `(images, rescaled)`: the `images` Input and its values mapped from `input_range` to [0, 1]."""
    import keras

    images = keras.Input(shape=input_shape, name="images")
    return images, input_rescaling(input_range)(images)


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Spatial size after one conv or pooling step, as Keras computes it."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def smallest_input(steps: Sequence[tuple[int, int, str]], limit: int = 4096) -> int:
    """Smallest height/width for which every `(kernel, stride, padding)` step leaves at least 1 pixel."""
    for size in range(1, limit):
        current = size
        for kernel, stride, padding in steps:
            current = output_size(current, kernel, stride, padding)
            if current < 1:
                break
        else:
            return size
    raise ValueError(f"No input up to {limit} pixels survives {steps}")


def spatial_dropout(x: Any, rate: float, name: str) -> Any:
    """SpatialDropout2D after a conv block when `conv_dropout` > 0, nothing otherwise."""
    import keras

    return keras.layers.SpatialDropout2D(rate, name=name)(x) if rate > 0 else x
