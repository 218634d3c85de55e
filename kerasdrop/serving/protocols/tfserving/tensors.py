"""gRPC TensorProtos checked before they become arrays: dtype as TF Serving checks it, and the shape
against the values the message carries (a tiny proto must not expand into a huge tensor)."""

from __future__ import annotations

import math

import numpy as np

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.models.admission import too_many_elements

# The repeated field that carries each dtype's values when tensor_content is empty, and how many
# field entries one element takes (complex numbers are stored as real, imaginary pairs).
_VALUE_FIELDS = {
    "DT_FLOAT": ("float_val", 1),
    "DT_DOUBLE": ("double_val", 1),
    "DT_INT32": ("int_val", 1),
    "DT_UINT8": ("int_val", 1),
    "DT_INT16": ("int_val", 1),
    "DT_INT8": ("int_val", 1),
    "DT_UINT16": ("int_val", 1),
    "DT_INT64": ("int64_val", 1),
    "DT_UINT32": ("uint32_val", 1),
    "DT_UINT64": ("uint64_val", 1),
    "DT_BOOL": ("bool_val", 1),
    "DT_STRING": ("string_val", 1),
    "DT_HALF": ("half_val", 1),
    "DT_BFLOAT16": ("half_val", 1),
    "DT_COMPLEX64": ("scomplex_val", 2),
    "DT_COMPLEX128": ("dcomplex_val", 2),
}


# DataType enums whose values travel as raw little-endian bytes (tensor_content) exactly like these
# numpy dtypes: read and written here without TensorFlow's make_ndarray / make_tensor_proto, which
# cost ~60 us a request in Python (a numpy version check on every call, among others).
_RAW_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 9: np.dtype("<i8")}
_RAW_ENUMS = {dtype: enum for enum, dtype in _RAW_DTYPES.items()}
_ONE_VALUE_FIELDS = {
    1: "float_val",
    2: "double_val",
    3: "int_val",
    9: "int64_val",
}  # TF's field for <= 1 value


def array_to_proto(array: np.ndarray, proto=None):
    """`array` as `tf.make_tensor_proto` writes it: dtype, shape, and tensor_content (or, for at
    most one value, the dtype's repeated field), written into `proto` (an empty TensorProto, such
    as a response's `outputs[key]`: no copy) or a new one. Returns the proto."""
    from tensorflow.core.framework import tensor_pb2

    enum = _RAW_ENUMS.get(array.dtype)
    if enum is None:
        import tensorflow as tf

        made = tf.make_tensor_proto(array)
        if proto is None:
            return made
        proto.CopyFrom(made)
        return proto
    if proto is None:
        proto = tensor_pb2.TensorProto()
    else:
        proto.Clear()  # written whole, as CopyFrom would
    proto.dtype = enum
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TF writes it
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.size > 1:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    else:
        getattr(proto, _ONE_VALUE_FIELDS[enum]).extend(array.reshape(-1).tolist())
    return proto


def dtype_name(enum: int) -> str:
    """TF's DataTypeString: DT_FLOAT -> float, DT_DOUBLE -> double (the names TF Serving's errors use)."""
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(enum).removeprefix("DT_").lower()


def _value_count(proto) -> int:
    from tensorflow.core.framework import types_pb2

    if proto.tensor_content and proto.dtype in _RAW_DTYPES:
        return len(proto.tensor_content) // _RAW_DTYPES[proto.dtype].itemsize
    enum_name = types_pb2.DataType.Name(proto.dtype)
    if proto.tensor_content:
        import tensorflow as tf

        return len(proto.tensor_content) // tf.dtypes.as_dtype(proto.dtype).size
    field, per_element = _VALUE_FIELDS.get(enum_name, (None, 1))
    if field is None:
        raise invalid(f"Tensor dtype {dtype_name(proto.dtype)} is not supported")
    return len(getattr(proto, field)) // per_element


def tensor_to_array(key: str, index: int, proto, signature_input, max_elements: int) -> np.ndarray:
    """The array a request's TensorProto holds, after the checks TF Serving makes (and a size bound)."""
    import tensorflow as tf

    if proto.dtype != signature_input.dtype:
        # TF's session feed check, which TF Serving returns as INVALID_ARGUMENT (it never casts).
        raise invalid(
            f"Expects arg[{index}] to be {dtype_name(signature_input.dtype)} but "
            f"{dtype_name(proto.dtype)} is provided"
        )
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"Input {key!r} has a negative dimension in its shape {dims}")
    size = math.prod(dims)  # Python ints: no overflow, and ~50x cheaper than np.prod on a short list
    if size > max_elements:
        raise too_many_elements(key, size, max_elements)
    count = _value_count(proto)
    if count != size:
        raise invalid(
            f"Input {key!r} declares shape {dims} ({size} values) but carries {count} values; send "
            "every value (a TensorProto is not expanded from fewer values here)"
        )
    raw = _RAW_DTYPES.get(proto.dtype)
    if raw is not None and proto.tensor_content:
        if len(proto.tensor_content) != size * raw.itemsize:
            raise invalid(
                f"Cannot read input tensor {key!r}: its tensor_content holds {len(proto.tensor_content)} "
                f"bytes, not {size} values of {raw.itemsize} bytes"
            )
        return np.frombuffer(proto.tensor_content, raw).reshape(dims)
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise invalid(f"Cannot read input tensor {key!r}: {error}") from None
