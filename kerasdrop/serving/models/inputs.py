"""Request inputs checked against a SignatureDef before they reach a graph: names, size, dtype, shape.

Both protocols call `validate_inputs`; errors say what was expected and what was received.
"""

from __future__ import annotations

import functools

import numpy as np

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.models.admission import too_many_elements


def _scalar_rows(dims: list[int], received: tuple) -> bool:
    """TF Serving passes `[2.0, 3.0]` to an input declared `[?, 1]` and the graph computes per row.

    Allowed only for vector/matrix inputs (rank <= 2) whose missing trailing dims are 1: elementwise
    and MatMul ops reject what they cannot take, unlike image kernels.
    """
    return (
        len(dims) <= 2
        and len(received) < len(dims)
        and all(d == 1 for d in dims[len(received) :])
        and all(d in (-1, r) for d, r in zip(dims, received))
    )


def nested_size(value) -> int:
    """Elements a nested JSON list claims, read along its first items (no array is built)."""
    size = 1
    while isinstance(value, list):
        size *= len(value)
        if not value:
            break
        value = value[0]
    return size


@functools.cache
def _dtype(enum: int) -> tuple:
    """(numpy dtype, is floating, TF's name) of a DataType enum: TensorFlow's own DType lookups cost
    more per request than the rest of the checks (measured in a profile of gRPC Predict)."""
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(enum)
    return (object if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)), dtype.is_floating, dtype.name


def _as_array(key: str, value, dtype: tuple, max_elements: int | None) -> np.ndarray:
    if max_elements is not None:
        size = value.size if isinstance(value, np.ndarray) else nested_size(value)
        if size > max_elements:
            raise too_many_elements(key, size, max_elements)
    try:
        return np.asarray(value, dtype=dtype[0])
    except (ValueError, TypeError, OverflowError) as error:
        raise invalid(
            f"Input {key!r} expects a rectangular array of {dtype[2]} values; received values "
            f"that cannot be converted ({str(error).split('.')[0]})"
        ) from None


def _check_shape(key: str, info, array: np.ndarray) -> None:
    shape = info.tensor_shape
    if shape.unknown_rank:
        return
    dims = [dim.size for dim in shape.dim]
    pretty = _Pretty(dims)
    if array.ndim == len(dims):
        if any(d != -1 and d != a for d, a in zip(dims, array.shape)):
            raise invalid(f"Input {key!r} expects shape {pretty}; received shape {list(array.shape)}")
    elif not _scalar_rows(dims, array.shape):
        # A wrong rank must never reach the graph: convolution kernels abort the process on it.
        raise invalid(
            f"Input {key!r} expects shape {pretty} (rank {len(dims)}); received shape "
            f"{list(array.shape)} (rank {array.ndim})"
        )
    if array.ndim and array.shape[0] == 0 and dims and dims[0] == -1:
        raise invalid(f"Input {key!r} has no rows; send at least one")


class _Pretty:
    """A signature's dims as TF Serving's errors write them, `[?, 8, 8, 1]`, built only for an error."""

    def __init__(self, dims: list[int]):
        self.dims = dims

    def __str__(self) -> str:
        return "[" + ", ".join("?" if d == -1 else str(d) for d in self.dims) + "]"


def validate_inputs(signature_def, inputs: dict, max_elements: int | None = None) -> dict[str, np.ndarray]:
    """Names, size, dtype and shape against the SignatureDef; finite floats."""
    expected = set(signature_def.inputs)
    missing, extra = sorted(expected - set(inputs)), sorted(set(inputs) - expected)
    if missing or extra:
        raise invalid(f"Expected inputs {sorted(expected)}; missing {missing}, unexpected {extra}")
    checked = {}
    for key, value in inputs.items():
        info = signature_def.inputs[key]
        dtype = _dtype(info.dtype)
        array = _as_array(key, value, dtype, max_elements)
        if dtype[1] and not np.isfinite(array).all():
            raise invalid(f"Input {key!r} contains NaN or infinity; expected finite {dtype[2]} values")
        _check_shape(key, info, array)
        checked[key] = array
    return checked
