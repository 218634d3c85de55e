"""Check 2 (LiteRT): scan every operator of every subgraph of a `.tflite` file, before anything runs.

Random builtins (RANDOM_UNIFORM, ...), resource-variable writes, reductions over a dynamic batch axis
(batch statistics: a training-mode BatchNormalization converts to MEAN over axis 0), and custom ops:
`Flex<op>` judged as the TensorFlow op it runs, any other custom op flagged as unknown behaviour.
Reads the flatbuffer with TensorFlow's own schema module, so it needs no LiteRT runtime.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from kerasdrop.verification import ops
from kerasdrop.verification.report import CheckRun, Report, UnusableInputError
from kerasdrop.verification.structure import STOCHASTIC_ACTION

CHECK = "graph"
BATCH_STATISTICS_ACTION = (
    "call BatchNormalization (and any layer using batch statistics) without training=True"
)


def read_tflite(path: pathlib.Path):
    """The flatbuffer as TensorFlow's object API (`ModelT`); unreadable files raise UnusableInputError."""
    from tensorflow.lite.python import schema_py_generated as schema

    path = pathlib.Path(path)
    if not path.is_file():
        raise UnusableInputError(f"LiteRT file not found: {path}")
    data = path.read_bytes()
    # Every .tflite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UnusableInputError(f"{path} is not a LiteRT (.tflite) flatbuffer: no TFL3 identifier")
    try:
        return schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as error:  # flatbuffers raises struct.error, IndexError... on truncated files
        raise UnusableInputError(
            f"{path} is a corrupt LiteRT flatbuffer: {type(error).__name__}: {error}"
        ) from None


def _operator_names():
    from tensorflow.lite.python import schema_py_generated as schema

    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def _constant(model, subgraph, tensor_index: int):
    """A constant tensor's values (its buffer), or None for a computed one."""
    if tensor_index < 0:
        return None
    tensor = subgraph.tensors[tensor_index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if buffer is None or buffer.data is None or len(buffer.data) == 0:
        return None
    dtype = {2: "int32", 4: "int64"}.get(tensor.type)  # schema TensorType INT32 = 2, INT64 = 4
    return None if dtype is None else np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype)


def _reduces_batch_axis(model, subgraph, operator) -> bool:
    """A reduction whose constant axes include 0 on an input whose batch dimension is open (or > 1)."""
    if len(operator.inputs) < 2:
        return False
    axes = _constant(model, subgraph, operator.inputs[1])
    source = subgraph.tensors[operator.inputs[0]]
    shape = source.shapeSignature if source.shapeSignature is not None else source.shape
    if axes is None or shape is None or len(shape) == 0:
        return False
    rank = len(shape)
    return any(int(axis) % rank == 0 for axis in axes) and (int(shape[0]) < 0 or int(shape[0]) > 1)


def _custom_op_finding(op: str) -> tuple[str, str, str] | None:
    """`(severity, message, action)` for a custom op: a Flex op judged as the TensorFlow op it runs."""
    from tensorflow.python.framework import op_def_registry

    tf_op = op[len(ops.TFLITE_FLEX_PREFIX) :] if op.startswith(ops.TFLITE_FLEX_PREFIX) else None
    if tf_op in ops.TF_STATEFUL_RANDOM_OPS or tf_op in ops.TF_STATELESS_RANDOM_OPS:
        return (
            "error",
            f"TensorFlow random op {tf_op} run through the Select-TF-ops delegate: random (or a "
            "fixed mask) at inference",
            STOCHASTIC_ACTION,
        )
    if tf_op in ops.TF_STATE_MUTATION_OPS:
        return ("error", f"TensorFlow op {tf_op} writes a variable while serving", BATCH_STATISTICS_ACTION)
    if tf_op is None or op_def_registry.get(tf_op) is None:
        return (
            "warning",
            f"custom op {op!r} is outside TFLite's builtin vocabulary: what it computes (random "
            "or not) cannot be judged from the file",
            "check the custom op's implementation, or convert without it",
        )
    return None


def _builtin_op_finding(op: str, model, subgraph, operator) -> tuple[str, str, str] | None:
    """`(severity, message, action)` for a builtin that is random, writes state or reduces the batch."""
    if op in ops.TFLITE_RANDOM_OPS:
        return ("error", f"random op {op}: it samples on every call", STOCHASTIC_ACTION)
    if op in ops.TFLITE_STATE_WRITE_OPS:
        return (
            "error",
            f"{op} writes a variable while serving: inference changes the model's state "
            "(training-mode BatchNormalization updating its moving statistics?)",
            BATCH_STATISTICS_ACTION,
        )
    if op in ops.TFLITE_REDUCTION_OPS and _reduces_batch_axis(model, subgraph, operator):
        return (
            "error",
            f"{op} over the batch axis: batch statistics, so a prediction depends on the rest of the batch",
            BATCH_STATISTICS_ACTION,
        )
    return None


def check_litert_graph(path: pathlib.Path, report: Report) -> None:
    from tensorflow.lite.python import schema_py_generated as schema

    started = time.perf_counter()
    model = read_tflite(path)
    names = _operator_names()
    count, problems = 0, 0
    for index, subgraph in enumerate(model.subgraphs or []):
        for position, operator in enumerate(subgraph.operators or []):
            count += 1
            code = model.operatorCodes[operator.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            if builtin == schema.BuiltinOperator.CUSTOM:
                op = (code.customCode or b"").decode(errors="replace")
                finding = _custom_op_finding(op)
            else:
                op = names.get(builtin, f"builtin {builtin}")
                finding = _builtin_op_finding(op, model, subgraph, operator)
            if finding is not None:
                problems += 1
                severity, message, action = finding
                report.add(CHECK, severity, f"tflite subgraph {index} op {position} ({op})", message, action)
    if not problems:
        report.add(
            CHECK,
            "info",
            f"tflite {pathlib.Path(path).name}",
            f"no random op, state write, batch-axis "
            f"reduction or custom op among {count} operators ({len(model.subgraphs or [])} subgraphs)",
        )
    report.checks.append(
        CheckRun(CHECK, str(path), time.perf_counter() - started, f"{count} LiteRT operators")
    )
