"""Check 2 (SavedModel): scan every op a served signature can execute, before anything runs.

Every node reachable from each signature's outputs, every op of every function those nodes call
(recursively: a Keras model's body lives in nested functions), and the init ops a loader runs.
Each op is judged by TensorFlow's own op registry (`OpDef.is_stateful`, seed attributes, written
resource inputs) against an allowlist of read-only state ops, not by a list of known bad names.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

from kerasdrop.layout import SAVED_MODEL_FILE
from kerasdrop.verification import ops as tf_ops
from kerasdrop.verification.report import CheckRun, Report, UnusableInputError
from kerasdrop.verification.structure import STOCHASTIC_ACTION

CHECK = "graph"
# Signatures allowed (and expected) to be random: kerasdrop's opt-in Monte Carlo dropout.
STOCHASTIC_SIGNATURES = ("mc_dropout",)
# What a SavedModel loader runs before any signature: TF2's init signature and TF1's collections.
INIT_SIGNATURE = "__saved_model_init_op"
INIT_COLLECTIONS = (
    "saved_model_main_op",
    "legacy_init_op",
    "table_initializer",
    "saved_model_legacy_init_op",
)


@dataclasses.dataclass
class GraphScan:
    signatures: list[str]  # every signature TF Serving would serve
    runnable: bool = True  # False: an op may act outside the process; nothing may be executed
    writes: dict = dataclasses.field(default_factory=dict)  # signature -> [(location, op)] state writes


def read_saved_model(directory: pathlib.Path):
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(directory) / SAVED_MODEL_FILE
    if not path.is_file():
        raise UnusableInputError(f"{directory} is not a SavedModel directory (no {SAVED_MODEL_FILE}).")
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


def reachable_ops(meta_graph, roots: list[str]) -> list[tuple[str, object]]:
    """`(location, NodeDef)` of every op reachable from `roots` (node names), into every called function."""
    graph = meta_graph.graph_def
    functions = {function.signature.name: function for function in graph.library.function}
    nodes = {node.name: node for node in graph.node}
    pending = [name.split(":")[0].lstrip("^") for name in roots]
    seen_nodes, seen_functions, found, function_queue = set(), set(), [], []
    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        found.append((name, node))
        pending.extend(entry.split(":")[0].lstrip("^") for entry in node.input)
        function_queue.extend(_called_functions(node, functions))
    while function_queue:
        function_name = function_queue.pop()
        if function_name in seen_functions or function_name not in functions:
            continue
        seen_functions.add(function_name)
        for node in _executed_nodes(functions[function_name]):
            found.append((f"{function_name}/{node.name}", node))
            function_queue.extend(_called_functions(node, functions))
    return [(location, node) for location, node in found if node.op not in functions]


def _executed_nodes(function) -> list:
    """The nodes of a function that run: those its outputs and control outputs depend on.

    TF prunes the rest (e.g. the dropout masks a Keras RNN builds but uses only in training), and
    automatic control dependencies list every stateful op among the control outputs, so none is missed.
    """
    nodes = {node.name: node for node in function.node_def}
    pending = [value.split(":")[0] for value in function.ret.values()] + list(function.control_ret.values())
    seen, executed = set(), []
    while pending:
        name = pending.pop().lstrip("^").split(":")[0]
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        executed.append(nodes[name])
        pending.extend(nodes[name].input)
    return executed


def signature_ops(meta_graph, signature_name: str) -> list[tuple[str, str, object]]:
    """`(location, op type, NodeDef)` of every op a signature can execute."""
    signature = meta_graph.signature_def[signature_name]
    roots = [tensor.name for tensor in signature.outputs.values()]
    return [(location, node.op, node) for location, node in reachable_ops(meta_graph, roots)]


def init_ops(meta_graph) -> list[tuple[str, str, object]]:
    """Ops a loader runs on load (TF2 init signature, TF1 main/legacy init and table initializers)."""
    roots = []
    if INIT_SIGNATURE in meta_graph.signature_def:
        roots += [tensor.name for tensor in meta_graph.signature_def[INIT_SIGNATURE].outputs.values()]
    for key in INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            roots += list(meta_graph.collection_def[key].node_list.value)
    return [(location, node.op, node) for location, node in reachable_ops(meta_graph, roots)]


def served_signatures(meta_graph) -> list[str]:
    # `__saved_model_init_op` and friends are TF's own bookkeeping; TF Serving serves every other key.
    return sorted(name for name in meta_graph.signature_def if not name.startswith("__"))


def check_saved_model_graph(directory: pathlib.Path, report: Report) -> GraphScan:
    """Scans the init ops and every signature. `scan.runnable` is False when nothing may be executed."""
    started = time.perf_counter()
    meta_graph = read_saved_model(directory)
    scan = GraphScan(served_signatures(meta_graph))
    total = 0
    for location, op, node in init_ops(meta_graph):
        total += 1
        if tf_ops.classify_tf_op(node) in tf_ops.NOT_RUNNABLE:
            scan.runnable = False
            _refuse(report, "init op (run on load)", location, op, tf_ops.classify_tf_op(node))
    functions = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    for name in scan.signatures:
        ops = signature_ops(meta_graph, name)
        total += len(ops)
        _check_signature(name, ops, report, scan, functions)
    report.checks.append(
        CheckRun(
            CHECK,
            str(directory),
            time.perf_counter() - started,
            f"{len(scan.signatures)} signatures, {total} ops",
        )
    )
    return scan


def _refuse(report: Report, where: str, location: str, op: str, hazard: str) -> None:
    what = (
        "is not a registered TensorFlow op (TF Serving cannot load it either)"
        if hazard == tf_ops.UNREGISTERED
        else "is stateful with effects outside the model (file system, network, I/O or unknown state)"
    )
    report.add(
        CHECK,
        "error",
        f"{where}: {location}",
        f"{op} {what}: refused before running anything",
        "remove the op from the served graph; a servable must not act outside the model",
    )


def rng_state_write(function, node) -> bool:
    """True for a write whose variable is read only to seed random ops (a Keras SeedGenerator advancing,
    as a Keras RNN with dropout does even at inference, where the masks it draws are unused).

    Follows every read of the written resource forward inside the function; reaching an output, a
    call or an unregistered op means some answer may depend on the variable.
    """
    from tensorflow.python.framework import op_def_registry

    if function is None or not node.input:
        return False
    consumers: dict[str, list] = {}
    for other in function.node_def:
        for entry in other.input:
            if not entry.startswith(
                "^"
            ):  # data only: automatic control edges tie every stateful op to the outputs
                consumers.setdefault(entry.split(":")[0], []).append(other)
    outputs = {value.split(":")[0] for value in function.ret.values()}
    pending = [
        other.name
        for other in function.node_def
        if other.op == "ReadVariableOp" and other.input and other.input[0] == node.input[0]
    ]
    seen, seeds_random = set(), False
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in outputs:
            return False
        for consumer in consumers.get(name, []):
            if op_def_registry.get(consumer.op) is None or consumer.op in tf_ops.TF_CALL_OPS:
                return False
            if tf_ops.classify_tf_op(consumer) in (tf_ops.RANDOM, tf_ops.FIXED_SEED):
                seeds_random = True
            else:
                pending.append(consumer.name)
    return seeds_random


def _check_signature(name: str, ops: list, report: Report, scan: GraphScan, functions: dict) -> None:
    stochastic = name in STOCHASTIC_SIGNATURES
    random_ops, writes = [], []
    for location, op, node in ops:
        hazard = tf_ops.classify_tf_op(node)
        if hazard in tf_ops.NOT_RUNNABLE:
            scan.runnable = False
            _refuse(report, f"signature {name}", location, op, hazard)
        elif hazard in (tf_ops.RANDOM, tf_ops.FIXED_SEED):
            random_ops.append((location, op, hazard))
        elif (
            hazard == tf_ops.STATE_WRITE
            and not stochastic
            and rng_state_write(functions.get(location[: len(location) - len(node.name) - 1]), node)
        ):
            report.add(
                CHECK,
                "warning",
                f"signature {name}: {location}",
                f"{op} advances random-number state that "
                "only seeds random ops no served answer uses (a Keras RNN's dropout seed): harmless to "
                "answers, but the SavedModel's state changes while serving",
            )
        elif hazard == tf_ops.STATE_WRITE:
            writes.append((location, op))
        if op in tf_ops.TF_BATCH_NORM_OPS and "is_training" in node.attr and node.attr["is_training"].b:
            report.add(
                CHECK,
                "error",
                f"signature {name}: {location}",
                "batch normalization with is_training=true: "
                "uses the batch's statistics, so a prediction depends on the rest of the batch",
                "call BatchNormalization without training=True before exporting",
            )
    scan.writes[name] = writes
    if stochastic:
        if random_ops:
            report.add(
                CHECK,
                "info",
                f"signature {name}",
                f"{len(random_ops)} random ops, as Monte Carlo dropout "
                "requires; this signature is opt-in and never the default",
            )
        else:
            report.add(
                CHECK,
                "error",
                f"signature {name}",
                "has no random op: Monte Carlo dropout cannot vary",
                "re-export with --mc-samples on a model that has dropout layers",
            )
        if writes:
            report.add(
                CHECK,
                "info",
                f"signature {name}",
                f"{len(writes)} state writes ({writes[0][1]}, ...): run "
                "below to prove they leave serving_default's variables and answers unchanged",
            )
        return
    for location, op, hazard in random_ops:
        kind = (
            (
                "stateless random op {op} in a served signature: the same mask on every call unless a variable "
                "write advances its seed"
            )
            if hazard == tf_ops.FIXED_SEED
            else "stateful random op {op} in a served signature: it samples on every call"
        )
        report.add(CHECK, "error", f"signature {name}: {location}", kind.format(op=op), STOCHASTIC_ACTION)
    for location, op in writes:
        report.add(
            CHECK,
            "error",
            f"signature {name}: {location}",
            f"{op} writes a variable while serving: "
            "inference changes the model's state (training-mode BatchNormalization updating its "
            "moving statistics, or a random seed advancing)",
            "call BatchNormalization and dropout layers without training=True before exporting",
        )
    if not random_ops and not writes:
        report.add(
            CHECK,
            "info",
            f"signature {name}",
            f"no random op or state write among {len(ops)} ops (nested functions included)",
        )
