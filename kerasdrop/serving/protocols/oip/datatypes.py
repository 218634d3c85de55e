"""The protocol's tensor datatypes and their numpy and TensorFlow (SignatureDef) equivalents."""

from __future__ import annotations

import numpy as np

from kerasdrop.serving.errors import invalid

# v2 datatype -> (numpy dtype, TensorFlow DataType enum value as a SignatureDef stores it).
# The enum values are fixed by tensorflow/core/framework/types.proto; BYTES is DT_STRING.
DATATYPES = {
    "BOOL": (np.dtype(np.bool_), 10),
    "UINT8": (np.dtype(np.uint8), 4),
    "UINT16": (np.dtype(np.uint16), 17),
    "UINT32": (np.dtype(np.uint32), 22),
    "UINT64": (np.dtype(np.uint64), 23),
    "INT8": (np.dtype(np.int8), 6),
    "INT16": (np.dtype(np.int16), 5),
    "INT32": (np.dtype(np.int32), 3),
    "INT64": (np.dtype(np.int64), 9),
    "FP16": (np.dtype(np.float16), 19),
    "FP32": (np.dtype(np.float32), 1),
    "FP64": (np.dtype(np.float64), 2),
    "BYTES": (np.dtype(object), 7),
}
_BY_ENUM = {enum: name for name, (_, enum) in DATATYPES.items()}


def from_signature(enum: int) -> str:
    """The v2 datatype of a SignatureDef tensor's dtype (e.g. DT_FLOAT -> FP32)."""
    if enum not in _BY_ENUM:
        raise invalid(
            f"The model has a tensor of TensorFlow dtype {enum}, which the Open Inference Protocol "
            f"cannot carry; expected one of {', '.join(DATATYPES)}"
        )
    return _BY_ENUM[enum]


def from_numpy(array: np.ndarray) -> str:
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    for name, (dtype, _) in DATATYPES.items():
        if dtype == array.dtype:
            return name
    raise invalid(
        f"An output of numpy dtype {array.dtype} cannot be sent as an Open Inference Protocol tensor"
    )


def numpy_dtype(datatype: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise invalid(f"Unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}")
    return DATATYPES[datatype][0]


def shape_of(tensor_info) -> list[int]:
    """A SignatureDef TensorInfo's shape with -1 for unknown dimensions ([] when even the rank is unknown)."""
    shape = tensor_info.tensor_shape
    return [] if shape.unknown_rank else [int(dim.size) for dim in shape.dim]


def serialize_bytes(array: np.ndarray) -> bytes:
    """BYTES elements as the binary extension and raw contents carry them: a 4-byte little-endian
    length before each element, row-major."""
    parts = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode()
        parts += [len(data).to_bytes(4, "little"), data]
    return b"".join(parts)


def deserialize_bytes(name: str, buffer, count: int) -> np.ndarray:
    """`count` length-prefixed elements from `buffer`; an error when it holds another number of them."""
    view, offset, values = memoryview(buffer), 0, []
    while offset < len(view):
        if offset + 4 > len(view):
            raise invalid(f"Input {name!r}: BYTES data ends inside an element's 4-byte length prefix")
        length = int.from_bytes(view[offset : offset + 4], "little")
        if offset + 4 + length > len(view):
            raise invalid(
                f"Input {name!r}: a BYTES element declares {length} bytes but only "
                f"{len(view) - offset - 4} remain"
            )
        values.append(bytes(view[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    if len(values) != count:
        raise invalid(
            f"Input {name!r}: its shape holds {count} elements but the BYTES data carries {len(values)}"
        )
    return np.array(values, dtype=object)


def from_buffer(name: str, datatype: str, buffer, shape: list[int]) -> np.ndarray:
    """A tensor from raw row-major little-endian bytes (binary extension, gRPC raw contents)."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if datatype == "BYTES":
        return deserialize_bytes(name, buffer, count).reshape(shape)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    if len(buffer) != count * dtype.itemsize:
        raise invalid(
            f"Input {name!r}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes; "
            f"received {len(buffer)}"
        )
    return np.frombuffer(buffer, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def to_buffer(array: np.ndarray) -> bytes:
    if from_numpy(array) == "BYTES":
        return serialize_bytes(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
