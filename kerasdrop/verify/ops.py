"""TensorFlow and ONNX operations that make inference random or batch-dependent."""

# TensorFlow's random op families (tensorflow/core/ops/random_ops.cc, stateful_random_ops.cc,
# stateless_random_ops.cc, stateless_random_ops_v2.cc and friends).
TF_STATEFUL_RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "RandomGamma", "RandomPoisson", "RandomPoissonV2", "Multinomial", "ParameterizedTruncatedNormal",
    "RandomCrop", "RandomGammaGrad", "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt",
    "StatefulStandardNormal", "StatefulStandardNormalV2", "StatefulTruncatedNormal", "StatefulRandomBinomial",
    "RngSkip", "RngReadAndSkip", "NonDeterministicInts", "SampleDistortedBoundingBox",
    "SampleDistortedBoundingBoxV2", "RandomShuffleQueue", "RandomShuffleQueueV2", "RandomDataset",
    "ExperimentalRandomDataset", "ShuffleDataset", "ShuffleDatasetV2", "ShuffleDatasetV3",
    "AnonymousRandomSeedGenerator", "AnonymousSeedGenerator",
})
TF_STATELESS_RANDOM_OPS = frozenset({
    "StatelessRandomUniform", "StatelessRandomUniformV2", "StatelessRandomUniformInt",
    "StatelessRandomUniformIntV2", "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2",
    "StatelessRandomNormal", "StatelessRandomNormalV2", "StatelessTruncatedNormal",
    "StatelessTruncatedNormalV2", "StatelessMultinomial", "StatelessRandomBinomial",
    "StatelessRandomGammaV2", "StatelessRandomGammaV3", "StatelessRandomPoisson",
    "StatelessParameterizedTruncatedNormal", "StatelessSampleDistortedBoundingBox", "StatelessShuffle",
    "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg", "StatelessRandomGetAlg",
})
# Batch normalisation ops whose `is_training` attribute makes them use the batch's statistics.
TF_BATCH_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
# Ops that write variables: a serving signature that runs one changes the model as it serves
# (training-mode BatchNormalization updating its moving statistics, a random seed advancing).
TF_STATE_MUTATION_OPS = frozenset({
    "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "Assign", "AssignAdd", "AssignSub",
    "ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub", "ScatterUpdate", "ScatterAdd",
})
ONNX_RANDOM_OPS = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike",
                             "Bernoulli", "Multinomial"})
