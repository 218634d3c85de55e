"""Check 2 (OpenVINO): scan every layer of an IR `.xml`, before anything runs.

Random ops (RandomUniform, Multinomial), variable writes (Assign), and batch statistics: MVN or a
reduction whose constant axes include the batch axis of an input with an open (or > 1) batch, which is
what a training-mode BatchNormalization becomes (an inference-mode one is a Multiply and an Add).
Reads the XML and the constants in the `.bin` beside it directly, so it needs no OpenVINO runtime.
"""

from __future__ import annotations

import pathlib
import time
import xml.etree.ElementTree as ElementTree

import numpy as np

from kerasdrop.verification import ops
from kerasdrop.verification.litert_graph import BATCH_STATISTICS_ACTION
from kerasdrop.verification.report import CheckRun, Report, UnusableInputError
from kerasdrop.verification.structure import STOCHASTIC_ACTION

CHECK = "graph"
_ELEMENT_TYPES = {"i64": "int64", "i32": "int32", "u64": "uint64", "u32": "uint32"}


def read_openvino_xml(path: pathlib.Path):
    """`(root element, .bin bytes or None)`; a file that is not an OpenVINO IR raises UnusableInputError."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UnusableInputError(f"OpenVINO IR file not found: {path}")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise UnusableInputError(f"{path} is not readable XML: {error}") from None
    if root.tag != "net" or root.find("layers") is None:
        raise UnusableInputError(
            f"{path} is not an OpenVINO IR (expected <net> with <layers>; found <{root.tag}>)"
        )
    weights = path.with_suffix(".bin")
    return root, weights.read_bytes() if weights.is_file() else None


def _constant(layer, weights: bytes | None):
    """An integer Const layer's values from the `.bin`, or None."""
    data = layer.find("data")
    if layer.get("type") != "Const" or data is None or weights is None:
        return None
    dtype = _ELEMENT_TYPES.get(data.get("element_type", ""))
    if dtype is None:
        return None
    offset, size = int(data.get("offset", -1)), int(data.get("size", -1))
    if offset < 0 or size < 0 or offset + size > len(weights):
        return None
    return np.frombuffer(weights[offset : offset + size], dtype=dtype)


def _input_dims(layer, port: str = "0") -> list[int] | None:
    for entry in layer.findall("input/port"):
        if entry.get("id") == port:
            return [
                int(dim.text) if dim.text and dim.text.lstrip("-").isdigit() else -1
                for dim in entry.findall("dim")
            ]
    return None


def _batch_axis_reduced(layer, layers: dict, edges: dict, weights) -> bool:
    """MVN (v1: across the whole tensor with `across_channels`; v6: axes input) or a Reduce* whose axes
    include 0, on an input whose batch dimension is open or larger than one."""
    dims = _input_dims(layer)
    if not dims or not (dims[0] < 0 or dims[0] > 1):
        return False
    data = layer.find("data")
    if layer.get("type") == "MVN" and layer.get("version") == "opset2" and data is not None:
        axes = [int(axis) for axis in (data.get("reduction_axes") or "").split(",") if axis.strip()]
        return 0 in axes
    source = edges.get((layer.get("id"), "1"))
    axes = _constant(layers[source], weights) if source in layers else None
    return axes is not None and any(int(axis) % len(dims) == 0 for axis in axes)


def check_openvino_graph(path: pathlib.Path, report: Report) -> None:
    started = time.perf_counter()
    root, weights = read_openvino_xml(path)
    layers = {layer.get("id"): layer for layer in root.iter("layer")}
    # (to-layer, to-port) -> from-layer: where each input comes from (the axes of a reduction).
    edges = {
        (edge.get("to-layer"), edge.get("to-port")): edge.get("from-layer") for edge in root.iter("edge")
    }
    problems = 0
    for layer in layers.values():
        kind, where = layer.get("type", ""), f"openvino layer {layer.get('name')} ({layer.get('type')})"
        if kind in ops.OPENVINO_RANDOM_OPS:
            problems += 1
            report.add(
                CHECK, "error", where, f"random op {kind}: it samples on every call", STOCHASTIC_ACTION
            )
        elif kind in ops.OPENVINO_STATE_WRITE_OPS:
            problems += 1
            report.add(
                CHECK,
                "error",
                where,
                f"{kind} writes a variable: state carried from one request to the next",
                "export a stateless model",
            )
        elif kind in ops.OPENVINO_REDUCTION_OPS and _batch_axis_reduced(layer, layers, edges, weights):
            problems += 1
            report.add(
                CHECK,
                "error",
                where,
                f"{kind} over the batch axis: batch statistics (a training-mode "
                "BatchNormalization; inference mode is a Multiply and an Add), so a prediction depends on "
                "the rest of the batch",
                BATCH_STATISTICS_ACTION,
            )
    if not problems:
        report.add(
            CHECK,
            "info",
            f"openvino {pathlib.Path(path).name}",
            f"no random op, variable write or batch-axis normalisation among {len(layers)} layers",
        )
    report.checks.append(
        CheckRun(CHECK, str(path), time.perf_counter() - started, f"{len(layers)} OpenVINO layers")
    )
