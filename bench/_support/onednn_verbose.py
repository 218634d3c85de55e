"""oneDNN's own timing of each primitive it runs (ONEDNN_VERBOSE=1 with ONEDNN_VERBOSE_TIMESTAMP=1),
grouped by layer and pass, with the FLOPs each computes, the bytes it must at least move and so its
arithmetic intensity (FLOP per byte): what says whether a slow primitive is short of arithmetic or of
memory bandwidth.

A line (oneDNN 3.x, with timestamps):

    onednn_verbose,v1,<ms since the epoch>,primitive,exec,cpu,<kind>,<implementation>,<prop kind>,
    <memory descriptors>,<attributes>,<auxiliary>,<problem>,<ms>

Problems: a convolution `mb128_ic32oc64_ih13oh11kh3sh1dh0ph0_iw13ow11kw3sw1dw0pw0` (an optional
`g<groups>` first), an inner product `mb128ic1600oc128`, a matmul through the GEMM API
`128x1600:1600x128` (M x K : K x N), a pooling `mb128ic32_ih26oh13kh2...`.
"""

from __future__ import annotations

import dataclasses
import re

_CONVOLUTION = re.compile(
    r"(?:g(\d+))?mb(\d+)_?ic(\d+)oc(\d+)_?(?:id\d+od\d+kd\d+\S*?_)?ih(\d+)oh(\d+)kh(\d+)"
)
_WIDTH = re.compile(r"iw(\d+)ow(\d+)kw(\d+)")
_INNER_PRODUCT = re.compile(r"mb(\d+)ic(\d+)(?:ih\d+iw\d+)?oc(\d+)")
_GEMM = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_POOLING = re.compile(r"mb(\d+)_?ic(\d+)_?ih(\d+)oh(\d+)kh(\d+)")
FLOAT_BYTES = 4


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One oneDNN primitive call: when it ran (ms since the epoch), what it computed, for how long."""

    timestamp_ms: float
    kind: str  # convolution, inner_product, gemm_api, pooling, reorder, eltwise, ...
    implementation: str  # brg_conv_fwd:avx512_core, jit:avx512_core, x64:gemm:jit, ...
    pass_: str  # forward_training, backward_data, backward_weights, undef
    problem: str
    milliseconds: float


def parse(lines) -> list[Primitive]:
    """The `exec` lines of oneDNN's verbose output (anything else is skipped); needs the timestamps."""
    found = []
    for line in lines:
        fields = line.rstrip("\n").split(",")
        if len(fields) < 13 or fields[0] != "onednn_verbose" or "exec" not in fields[3:5]:
            continue
        start = fields.index("exec")
        try:
            timestamp, milliseconds = float(fields[start - 2]), float(fields[-1])
        except ValueError:
            continue  # a line without the timestamp (ONEDNN_VERBOSE_TIMESTAMP unset)
        found.append(
            Primitive(
                timestamp, fields[start + 2], fields[start + 3], fields[start + 4], fields[-2], milliseconds
            )
        )
    return found


def shape(primitive: Primitive) -> dict | None:
    """The problem's sizes, or None for a primitive whose FLOPs are not counted here (reorders,
    element-wise ops)."""
    if primitive.kind == "convolution" and (match := _CONVOLUTION.search(primitive.problem)):
        groups, batch, channels_in, channels_out, height_in, height_out, kernel_h = (
            int(value) if value else 1 for value in match.groups()
        )
        width = _WIDTH.search(primitive.problem)
        width_in, width_out, kernel_w = (
            map(int, width.groups()) if width else (height_in, height_out, kernel_h)
        )
        return {
            "batch": batch,
            "in": (height_in, width_in, channels_in),
            "out": (height_out, width_out, channels_out),
            "kernel": (kernel_h, kernel_w, channels_in // groups, channels_out),
        }
    if primitive.kind == "inner_product" and (match := _INNER_PRODUCT.search(primitive.problem)):
        batch, channels_in, channels_out = map(int, match.groups())
        return {
            "batch": batch,
            "in": (channels_in,),
            "out": (channels_out,),
            "kernel": (channels_in, channels_out),
        }
    if primitive.kind in ("gemm_api", "matmul") and (match := _GEMM.search(primitive.problem)):
        rows, inner, _, columns = map(int, match.groups())
        return {"batch": rows, "in": (inner,), "out": (columns,), "kernel": (inner, columns)}
    return None


def _product(values) -> int:
    result = 1
    for value in values:
        result *= value
    return result


def flops(primitive: Primitive) -> int:
    """Multiply-adds x 2. Every pass of a convolution or an inner product computes as many as its
    forward pass (the data gradient and the weight gradient are GEMMs of the same three sizes)."""
    sizes = shape(primitive)
    if sizes is None:
        return 0
    return 2 * sizes["batch"] * _product(sizes["out"][:-1]) * _product(sizes["kernel"])


def minimum_bytes(primitive: Primitive) -> int:
    """Bytes the primitive must at least read and write, each tensor once: input (or its gradient),
    output (or its gradient) and weights (or their gradient), in float32. A lower bound: what a real
    kernel moves is more, when its tiles do not stay in cache."""
    sizes = shape(primitive)
    if sizes is None:
        return 0
    elements = sizes["batch"] * (_product(sizes["in"]) + _product(sizes["out"])) + _product(sizes["kernel"])
    return FLOAT_BYTES * elements


def arithmetic_intensity(primitive: Primitive) -> float:
    """FLOP per byte moved (at best): below the machine's FLOP/s over its bytes/s, the primitive
    cannot be compute-bound however good its kernel."""
    moved = minimum_bytes(primitive)
    return flops(primitive) / moved if moved else 0.0


def group(primitives: list[Primitive]) -> dict[tuple[str, str, str], list[Primitive]]:
    """Calls by (kind, pass, problem): one entry per layer and pass."""
    groups: dict[tuple[str, str, str], list[Primitive]] = {}
    for primitive in primitives:
        groups.setdefault((primitive.kind, primitive.pass_, primitive.problem), []).append(primitive)
    return groups
