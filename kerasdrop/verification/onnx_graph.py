"""Check 2 (ONNX): scan every node, in the main graph, every If/Loop/Scan subgraph and every
model-local function, for random ops and training-mode Dropout/BatchNormalization.

A Dropout's `training_mode` must be a constant false after constant folding (ONNX Runtime deletes
Dropout nodes whatever it says, so its outputs cannot reveal this; other runtimes honour it).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from kerasdrop.verification.ops import (
    ONNX_RANDOM_OPS,
    TF_STATEFUL_RANDOM_OPS,
    TF_STATELESS_RANDOM_OPS,
)
from kerasdrop.verification.report import CheckRun, Report, UnusableInputError
from kerasdrop.verification.structure import STOCHASTIC_ACTION

CHECK = "graph"
# ONNX Runtime's contrib ops that sample (com.microsoft domain).
ONNX_CONTRIB_RANDOM_OPS = frozenset({"BiasDropout", "BitmaskDropout", "BitmaskBiasDropout", "DropoutGrad"})


def read_onnx(path: pathlib.Path):
    import onnx

    path = pathlib.Path(path)
    if not path.is_file():
        raise UnusableInputError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and friends
        raise UnusableInputError(
            f"{path} is not a readable ONNX model: {str(error).splitlines()[0][:300]}"
        ) from None


def is_valid_onnx(path: pathlib.Path) -> bool:
    """The ONNX checker accepts it (or refuses it only for an IR version or opset newer than it knows)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # unreadable: not ONNX at all
        return False
    if not model.graph.node or not model.graph.output:
        return False
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # onnx.checker.ValidationError and friends
        text = str(error)
        return "higher than" in text or "opset" in text.lower() and "newer" in text.lower()
    return True


def _subgraphs(node):
    import onnx

    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _graph_nodes(nodes, prefix: str, scope: list):
    """`(location, node, scope)` for `nodes` and every subgraph inside them; `scope` lists the enclosing
    graphs' node lists (innermost last), where a subgraph's outer-scope values come from."""
    for node in nodes:
        location = f"{prefix}{node.name or node.op_type}"
        yield location, node, scope
        for subgraph in _subgraphs(node):
            inner = scope + [(list(subgraph.node), list(subgraph.initializer))]
            yield from _graph_nodes(subgraph.node, f"{location}/", inner)


def onnx_nodes(model):
    """Every node of the main graph, its subgraphs and every model-local function (and theirs)."""
    yield from _graph_nodes(model.graph.node, "", [(list(model.graph.node), list(model.graph.initializer))])
    for function in model.functions:
        yield from _graph_nodes(
            function.node, f"function {function.domain}:{function.name}/", [(list(function.node), [])]
        )


def constant_value(name: str, scope: list):
    """The value of tensor `name` if it folds to a constant within `scope`, else None."""
    import onnx.numpy_helper

    producers, initializers = {}, {}
    for nodes, inits in scope:
        producers.update({output: node for node in nodes for output in node.output})
        initializers.update({init.name: init for init in inits})
    needed, pending, seen = [], [name], set()
    while pending:
        tensor = pending.pop()
        if tensor in seen or tensor in initializers or tensor == "":
            continue
        seen.add(tensor)
        node = producers.get(tensor)
        if node is None or any(True for _ in _subgraphs(node)) or node.op_type in ONNX_RANDOM_OPS:
            return None  # a graph input, an outer value we cannot see, or not foldable
        needed.append(node)
        pending.extend(node.input)
    if name in initializers:
        return onnx.numpy_helper.to_array(initializers[name])
    return _evaluate(name, needed[::-1], initializers)


def _evaluate(name: str, nodes: list, initializers: dict):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    ordered, done = [], set()
    while len(ordered) < len(nodes):  # topological order of the few nodes that produce `name`
        progress = False
        for node in nodes:
            if id(node) not in done and all(
                i in initializers or i == "" or any(i in n.output for n in ordered) for i in node.input
            ):
                ordered.append(node)
                done.add(id(node))
                progress = True
        if not progress:
            return None
    used = {i for node in ordered for i in node.input}
    graph = helper.make_graph(
        ordered,
        "fold",
        [],
        [helper.make_empty_tensor_value_info(name)],
        initializer=[init for key, init in initializers.items() if key in used],
    )
    try:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        return np.asarray(ReferenceEvaluator(model).run(None, {})[0])
    except Exception:  # an op the reference evaluator cannot fold: treat the value as unknown
        return None


def _dropout_finding(node, scope):
    """None when the Dropout is inference mode or the identity; else the reason it is not."""
    if len(node.input) < 3 or not node.input[2]:
        return None  # training_mode defaults to false
    training = constant_value(node.input[2], scope)
    if training is not None and not bool(np.asarray(training).reshape(-1)[0]):
        return None
    ratio = constant_value(node.input[1], scope) if len(node.input) > 1 and node.input[1] else np.array(0.5)
    if ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) == 0.0:
        return None  # ratio 0: the identity in any mode
    return "a runtime input" if training is None else "constant true"


def check_onnx_graph(path: pathlib.Path, report: Report) -> None:
    started = time.perf_counter()
    model = read_onnx(path)
    count, problems = 0, 0
    for location, node, scope in onnx_nodes(model):
        count += 1
        if node.op_type in ONNX_RANDOM_OPS or (
            node.domain == "com.microsoft" and node.op_type in ONNX_CONTRIB_RANDOM_OPS
        ):
            problems += 1
            report.add(
                CHECK, "error", f"onnx node {location}", f"random op {node.op_type}", STOCHASTIC_ACTION
            )
        elif node.op_type in TF_STATEFUL_RANDOM_OPS or node.op_type in TF_STATELESS_RANDOM_OPS:
            # tf2onnx leaves TensorFlow ops it cannot convert in place (e.g. a stochastic-depth Dropout's
            # StatelessRandomUniformV2): not ONNX, and random in whichever runtime implements it.
            problems += 1
            report.add(
                CHECK,
                "error",
                f"onnx node {location}",
                f"TensorFlow random op {node.op_type} left "
                "unconverted by the exporter: random (or a fixed mask) wherever it runs",
                STOCHASTIC_ACTION,
            )
        elif node.op_type == "Dropout" and node.domain in ("", "ai.onnx"):
            state = _dropout_finding(node, scope)
            if state:
                problems += 1
                report.add(
                    CHECK,
                    "error",
                    f"onnx node {location}",
                    f"Dropout with training_mode {state}: runtimes "
                    "that honour it drop units at inference (ONNX Runtime deletes Dropout, so it cannot show "
                    "this)",
                    "re-export with training_mode false, or remove the Dropout node",
                )
        elif node.op_type == "BatchNormalization" and any(
            a.name == "training_mode" and a.i for a in node.attribute
        ):
            problems += 1
            report.add(
                CHECK,
                "error",
                f"onnx node {location}",
                "BatchNormalization with training_mode=1 uses batch statistics",
                "export BatchNormalization in inference mode",
            )
    if not problems:
        report.add(
            CHECK,
            "info",
            f"onnx {pathlib.Path(path).name}",
            f"no random op, no training-mode Dropout or "
            f"BatchNormalization among {count} nodes (subgraphs and {len(model.functions)} local functions "
            "included)",
        )
    report.checks.append(CheckRun(CHECK, str(path), time.perf_counter() - started, f"{count} ONNX nodes"))
