"""TensorFlow and ONNX operations that make inference random or batch-dependent."""

# TensorFlow's random op families (tensorflow/core/ops/random_ops.cc, stateful_random_ops.cc,
# stateless_random_ops.cc, stateless_random_ops_v2.cc and friends).
TF_STATEFUL_RANDOM_OPS = frozenset(
    {
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "RandomShuffle",
        "RandomGamma",
        "RandomPoisson",
        "RandomPoissonV2",
        "Multinomial",
        "ParameterizedTruncatedNormal",
        "RandomCrop",
        "RandomGammaGrad",
        "StatefulUniform",
        "StatefulUniformInt",
        "StatefulUniformFullInt",
        "StatefulStandardNormal",
        "StatefulStandardNormalV2",
        "StatefulTruncatedNormal",
        "StatefulRandomBinomial",
        "RngSkip",
        "RngReadAndSkip",
        "NonDeterministicInts",
        "SampleDistortedBoundingBox",
        "SampleDistortedBoundingBoxV2",
        "RandomShuffleQueue",
        "RandomShuffleQueueV2",
        "RandomDataset",
        "ExperimentalRandomDataset",
        "ShuffleDataset",
        "ShuffleDatasetV2",
        "ShuffleDatasetV3",
        "AnonymousRandomSeedGenerator",
        "AnonymousSeedGenerator",
    }
)
TF_STATELESS_RANDOM_OPS = frozenset(
    {
        "StatelessRandomUniform",
        "StatelessRandomUniformV2",
        "StatelessRandomUniformInt",
        "StatelessRandomUniformIntV2",
        "StatelessRandomUniformFullInt",
        "StatelessRandomUniformFullIntV2",
        "StatelessRandomNormal",
        "StatelessRandomNormalV2",
        "StatelessTruncatedNormal",
        "StatelessTruncatedNormalV2",
        "StatelessMultinomial",
        "StatelessRandomBinomial",
        "StatelessRandomGammaV2",
        "StatelessRandomGammaV3",
        "StatelessRandomPoisson",
        "StatelessParameterizedTruncatedNormal",
        "StatelessSampleDistortedBoundingBox",
        "StatelessShuffle",
        "StatelessRandomGetKeyCounter",
        "StatelessRandomGetKeyCounterAlg",
        "StatelessRandomGetAlg",
    }
)
# Batch normalisation ops whose `is_training` attribute makes them use the batch's statistics.
TF_BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
# Ops that write variables: a serving signature that runs one changes the model as it serves
# (training-mode BatchNormalization updating its moving statistics, a random seed advancing).
TF_STATE_MUTATION_OPS = frozenset(
    {
        "AssignVariableOp",
        "AssignAddVariableOp",
        "AssignSubVariableOp",
        "Assign",
        "AssignAdd",
        "AssignSub",
        "ResourceScatterUpdate",
        "ResourceScatterAdd",
        "ResourceScatterSub",
        "ScatterUpdate",
        "ScatterAdd",
    }
)
ONNX_RANDOM_OPS = frozenset(
    {"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial"}
)

# --- classifying any TensorFlow op by TensorFlow's own op registry ---------------------------------
# Stateful ops that only read state, or create or call something scanned on its own. Every other
# stateful op (OpDef.is_stateful) either writes state, samples, or has effects outside the process.
TF_READ_ONLY_STATE_OPS = frozenset(
    {
        "ReadVariableOp",
        "_ReadVariablesOp",
        "VarHandleOp",
        "_VarHandlesOp",
        "VarIsInitializedOp",
        "VariableShape",
        "ResourceGather",
        "ResourceGatherNd",
        "Variable",
        "VariableV2",
        "DestroyResourceOp",
        "IsVariableInitialized",
        "HashTable",
        "HashTableV2",
        "AnonymousHashTable",
        "MutableHashTable",
        "MutableHashTableV2",
        "MutableHashTableOfTensors",
        "MutableHashTableOfTensorsV2",
        "MutableDenseHashTable",
        "MutableDenseHashTableV2",
        "LookupTableFind",
        "LookupTableFindV2",
        "LookupTableSize",
        "LookupTableSizeV2",
        "LookupTableExport",
        "LookupTableExportV2",
        "GuaranteeConst",
        "_Arg",
        "_Retval",
        "_DeviceArg",
        "_DeviceRetval",
        "MutexV2",
        "MutexLock",
        "ConsumeMutexLock",
        # Scratch memory local to one call (TF1 TensorArray/Stack): written and read within the call.
        "TensorArray",
        "TensorArrayV2",
        "TensorArrayV3",
        "TensorArrayGrad",
        "TensorArrayGradV2",
        "TensorArrayGradV3",
        "TensorArrayWriteV3",
        "TensorArrayReadV3",
        "TensorArrayGatherV3",
        "TensorArrayScatterV3",
        "TensorArraySizeV3",
        "TensorArrayConcatV3",
        "TensorArraySplitV3",
        "TensorArrayCloseV3",
        "Stack",
        "StackV2",
        "StackPushV2",
        "StackPopV2",
        "StackCloseV2",
    }
)
# Calls and control flow: their bodies are functions, scanned like the rest.
TF_CALL_OPS = frozenset(
    {
        "StatefulPartitionedCall",
        "PartitionedCall",
        "If",
        "While",
        "Case",
        "StatelessIf",
        "StatelessWhile",
        "StatelessCase",
        "_If",
        "_While",
        "For",
        "SymbolicGradient",
    }
)
# Stateful only because they may fail or log to stderr; harmless while serving.
TF_CHECK_OPS = frozenset({"Assert", "CheckNumerics", "CheckNumericsV2", "Print", "PrintV2"})
# Resource or reference inputs that name the state an op writes (variables, tables, optimizer slots).
TF_WRITTEN_STATE_INPUTS = frozenset(
    {
        "resource",
        "var",
        "ref",
        "table_handle",
        "handle",
        "accum",
        "accum_update",
        "m",
        "v",
        "ms",
        "mom",
        "mg",
        "linear",
        "vhat",
        "gradient_accumulator",
        "gradient_squared_accumulator",
        "resource_handle",
    }
)

RANDOM, FIXED_SEED, STATE_WRITE, SIDE_EFFECT, UNREGISTERED = (
    "random",
    "fixed-seed random",
    "state write",
    "side effect",
    "unregistered",
)
# Findings of these kinds are refused before anything is run: running them could act outside the process.
NOT_RUNNABLE = (SIDE_EFFECT, UNREGISTERED)


def classify_tf_op(node) -> str | None:
    """The hazard of one NodeDef: RANDOM, FIXED_SEED, STATE_WRITE, SIDE_EFFECT, UNREGISTERED or None."""
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return UNREGISTERED
    attrs = {attr.name for attr in op_def.attr}
    inputs = {arg.name for arg in op_def.input_arg}
    if node.op in TF_STATEFUL_RANDOM_OPS or "seed" in attrs or "seed2" in attrs:
        return RANDOM
    if node.op in TF_STATELESS_RANDOM_OPS or "seed" in inputs or {"key", "counter"} <= inputs:
        return FIXED_SEED
    if not op_def.is_stateful or node.op in TF_READ_ONLY_STATE_OPS or node.op in TF_CALL_OPS:
        return None
    if node.op in TF_CHECK_OPS:
        stream = node.attr["output_stream"].s.decode() if "output_stream" in node.attr else "stderr"
        return SIDE_EFFECT if stream.startswith("file://") else None
    if node.op in TF_STATE_MUTATION_OPS or any(
        (arg.type == 20 or arg.is_ref) and arg.name in TF_WRITTEN_STATE_INPUTS for arg in op_def.input_arg
    ):
        return STATE_WRITE  # 20: DT_RESOURCE
    return SIDE_EFFECT


# --- LiteRT (TFLite) builtin operators (tensorflow/lite/schema/schema.fbs BuiltinOperator) -----------
TFLITE_RANDOM_OPS = frozenset({"RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL"})
# Resource-variable writes: a signature that runs one changes the model as it serves (a training-mode
# BatchNormalization converted with its moving-statistics update).
TFLITE_STATE_WRITE_OPS = frozenset({"ASSIGN_VARIABLE"})
# Reductions that, over the batch axis, compute batch statistics (a training-mode BatchNormalization's
# MEAN and SQUARED_DIFFERENCE mean over axis 0).
TFLITE_REDUCTION_OPS = frozenset(
    {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"}
)
# A custom op `Flex<TF op>` is a TensorFlow op run by the Select-TF-ops delegate.
TFLITE_FLEX_PREFIX = "Flex"

# --- OpenVINO opset (docs.openvino.ai operation specifications) ---------------------------------------
OPENVINO_RANDOM_OPS = frozenset({"RandomUniform", "Multinomial"})
# Variable writes of a stateful IR (ReadValue/Assign pairs): state carried from one request to the next.
OPENVINO_STATE_WRITE_OPS = frozenset({"Assign"})
# Normalisations and reductions that, over the batch axis, compute batch statistics.
OPENVINO_REDUCTION_OPS = frozenset(
    {
        "MVN",
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "NormalizeL2",
    }
)
