"""Check 2: scan the written graphs for random ops and training-mode batch norm.

SavedModel: every node reachable from each signature's outputs, and every op of every function
those nodes call, recursively (the body of a Keras model lives in nested functions). ONNX: every
node, including subgraphs of If/Loop/Scan, plus Dropout nodes whose `training_mode` is not a
constant false (ONNX Runtime drops Dropout nodes regardless, so its outputs cannot reveal this).
"""

from __future__ import annotations

import pathlib
import time

from kerasdrop.verify.ops import (
    ONNX_RANDOM_OPS, TF_BATCH_NORM_OPS, TF_STATE_MUTATION_OPS, TF_STATEFUL_RANDOM_OPS, TF_STATELESS_RANDOM_OPS,
)
from kerasdrop.verify.report import CheckRun, Report, UnusableInputError
from kerasdrop.verify.structure import STOCHASTIC_ACTION

CHECK = "graph"
# Signatures allowed (and expected) to be random: kerasdrop's opt-in Monte Carlo dropout.
STOCHASTIC_SIGNATURES = ("mc_dropout",)


def read_saved_model(directory: pathlib.Path):
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(directory) / "saved_model.pb"
    if not path.is_file():
        raise UnusableInputError(f"{directory} is not a SavedModel directory (no saved_model.pb).")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf raises DecodeError, a plain Exception subclass
        raise UnusableInputError(f"{path} is corrupt: {error}") from None
    serving = [graph for graph in saved_model.meta_graphs if "serve" in graph.meta_info_def.tags]
    if not serving:
        raise UnusableInputError(f"{path} has no MetaGraph tagged 'serve', which TF Serving loads.")
    return serving[0]


def _called_functions(node, functions) -> list[str]:
    names = [node.op] if node.op in functions else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names.extend(function.name for function in value.list.func)
    return names


def signature_ops(meta_graph, signature_name: str) -> list[tuple[str, str, object]]:
    """`(location, op type, NodeDef)` of every op a signature can execute."""
    graph = meta_graph.graph_def
    functions = {function.signature.name: function for function in graph.library.function}
    nodes = {node.name: node for node in graph.node}
    signature = meta_graph.signature_def[signature_name]
    pending = [tensor.name.split(":")[0].lstrip("^") for tensor in signature.outputs.values()]
    seen_nodes, seen_functions, found = set(), set(), []
    function_queue = []
    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        found.append((name, node.op, node))
        pending.extend(entry.split(":")[0].lstrip("^") for entry in node.input)
        function_queue.extend(_called_functions(node, functions))
    while function_queue:
        function_name = function_queue.pop()
        if function_name in seen_functions or function_name not in functions:
            continue
        seen_functions.add(function_name)
        for node in functions[function_name].node_def:
            found.append((f"{function_name}/{node.name}", node.op, node))
            function_queue.extend(_called_functions(node, functions))
    return found


def check_saved_model_graph(directory: pathlib.Path, report: Report) -> list[str]:
    """Scans every signature; returns the signature names."""
    started = time.perf_counter()
    meta_graph = read_saved_model(directory)
    # `__saved_model_init_op` and friends are TF's own bookkeeping, not servable signatures.
    names = sorted(name for name in meta_graph.signature_def if not name.startswith("__"))
    total = 0
    for name in names:
        ops = signature_ops(meta_graph, name)
        total += len(ops)
        random_ops = [(location, op) for location, op, _ in ops
                      if op in TF_STATEFUL_RANDOM_OPS or op in TF_STATELESS_RANDOM_OPS]
        training_norms = [location for location, op, node in ops
                          if op in TF_BATCH_NORM_OPS and "is_training" in node.attr and node.attr["is_training"].b]
        if name in STOCHASTIC_SIGNATURES:
            if random_ops:
                report.add(CHECK, "info", f"signature {name}", f"{len(random_ops)} random ops, as Monte Carlo dropout "
                           "requires; this signature is opt-in and never the default")
            else:
                report.add(CHECK, "error", f"signature {name}", "has no random op: Monte Carlo dropout cannot vary",
                           "re-export with --mc-samples on a model that has dropout layers")
        else:
            for location, op in random_ops:
                kind = "stateless (fixed seed: the same mask on every call)" if op in TF_STATELESS_RANDOM_OPS else "stateful"
                report.add(CHECK, "error", f"signature {name}: {location}", f"{kind} random op {op} in a serving "
                           "signature", STOCHASTIC_ACTION)
            if not random_ops:
                report.add(CHECK, "info", f"signature {name}", f"no random op among {len(ops)} ops (nested functions "
                           "included)")
        if name not in STOCHASTIC_SIGNATURES:
            for location, op in [(location, op) for location, op, _ in ops if op in TF_STATE_MUTATION_OPS]:
                report.add(CHECK, "error", f"signature {name}: {location}", f"{op} writes a variable while serving: "
                           "inference changes the model's state (training-mode BatchNormalization updating its "
                           "moving statistics, or a random seed advancing)",
                           "call BatchNormalization and dropout layers without training=True before exporting")
        for location in training_norms:
            report.add(CHECK, "error", f"signature {name}: {location}", "batch normalization with is_training=true: "
                       "uses the batch's statistics, so a prediction depends on the rest of the batch",
                       "call BatchNormalization without training=True before exporting")
    report.checks.append(CheckRun(CHECK, str(directory), time.perf_counter() - started,
                                  f"{len(names)} signatures, {total} ops"))
    return names


def read_onnx(path: pathlib.Path):
    import onnx

    path = pathlib.Path(path)
    if not path.is_file():
        raise UnusableInputError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and friends
        raise UnusableInputError(f"{path} is not a readable ONNX model: {error}") from None


def _onnx_nodes(graph, prefix=""):
    import onnx

    for node in graph.node:
        location = f"{prefix}{node.name or node.op_type}"
        yield location, node, graph
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _onnx_nodes(attribute.g, prefix=f"{location}/")
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _onnx_nodes(subgraph, prefix=f"{location}/")


def _constant_values(model) -> dict[str, object]:
    import onnx.numpy_helper

    values = {}
    graphs = [model.graph] + [g for _, node, _ in _onnx_nodes(model.graph) for a in node.attribute
                              for g in ([a.g] if a.HasField("g") else list(a.graphs))]
    for graph in graphs:
        for initializer in graph.initializer:
            values[initializer.name] = onnx.numpy_helper.to_array(initializer)
        for node in graph.node:
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value":
                        values[node.output[0]] = onnx.numpy_helper.to_array(attribute.t)
    return values


def check_onnx_graph(path: pathlib.Path, report: Report) -> None:
    started = time.perf_counter()
    model = read_onnx(path)
    constants = _constant_values(model)
    count, problems = 0, 0
    for location, node, _ in _onnx_nodes(model.graph):
        count += 1
        if node.op_type in ONNX_RANDOM_OPS:
            problems += 1
            report.add(CHECK, "error", f"onnx node {location}", f"random op {node.op_type}", STOCHASTIC_ACTION)
        elif node.op_type == "Dropout" and len(node.input) >= 3 and node.input[2]:
            value = constants.get(node.input[2])
            if value is None or bool(value.reshape(-1)[0]):
                problems += 1
                state = "a runtime input" if value is None else "constant true"
                report.add(CHECK, "error", f"onnx node {location}", f"Dropout with training_mode {state}: runtimes that "
                           "honour it drop units at inference (ONNX Runtime deletes Dropout, so it cannot show this)",
                           "re-export with training_mode false, or remove the Dropout node")
        elif node.op_type == "BatchNormalization" and any(a.name == "training_mode" and a.i for a in node.attribute):
            problems += 1
            report.add(CHECK, "error", f"onnx node {location}", "BatchNormalization with training_mode=1 uses batch "
                       "statistics", "export BatchNormalization in inference mode")
    if not problems:
        report.add(CHECK, "info", f"onnx {pathlib.Path(path).name}", f"no random op, no training-mode Dropout or "
                   f"BatchNormalization among {count} nodes")
    report.checks.append(CheckRun(CHECK, str(path), time.perf_counter() - started, f"{count} ONNX nodes"))
