"""How long an epoch of a recipe takes: FLOPs per image, a training rate measured here, a GPU estimate.

bench/recipe_epoch_time.py prints these for the real-data recipes; their `[expect]` figures are its output.
"""

from __future__ import annotations

import dataclasses
import time

# Training-split sizes from the TFDS catalogue (an unprepared builder does not know them).
TRAIN_SPLIT_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000}
# A training step costs about three forward passes: the backward pass computes gradients with
# respect to both the activations and the weights, each about as costly as the forward pass.
TRAINING_COST_IN_FORWARD_PASSES = 3
# The GPU the estimate is for: an assumed round 10 TFLOP/s sustained in float32, not a measured figure
# (for scale: an A100's float32 peak without tensor cores is 19.5 TFLOP/s, a T4's 8.1). Never run here;
# the input pipeline and per-step overheads are not counted, so small models take longer than this.
GPU_SUSTAINED_FLOPS = 10e12


@dataclasses.dataclass(frozen=True)
class EpochTime:
    forward_flops: int  # per image
    examples_per_epoch: int
    cpu_images_per_second: float  # measured, training step, synthetic data of the recipe's shape
    cpu_seconds_per_epoch: float
    gpu_seconds_per_epoch: float  # estimated from FLOPs at GPU_SUSTAINED_FLOPS


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass (2 per multiply-add) in Conv2D, DepthwiseConv2D and Dense layers.

    Pooling, normalisation and activations are left out: they are a few percent of a convnet's work.
    """
    import keras

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel_h, kernel_w, channels, multiplier = layer.kernel.shape
            _, out_h, out_w, _ = layer.output.shape
            total += 2 * out_h * out_w * channels * multiplier * kernel_h * kernel_w
        elif isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, in_channels, filters = layer.kernel.shape
            _, out_h, out_w, _ = layer.output.shape
            total += 2 * out_h * out_w * filters * kernel_h * kernel_w * in_channels
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model (keras.applications trunks)
            yield from _layers(layer)
        else:
            yield layer


def examples_per_epoch(dataset: str, validation_fraction: float) -> int:
    """Training examples an epoch sees: the catalogue's training split less the validation share."""
    from kerasdrop.data.core import canonical_dataset_spec

    name = canonical_dataset_spec(dataset).split(":")[1]
    size = TRAIN_SPLIT_SIZES[name]
    return size - max(1, round(size * validation_fraction))


def gpu_seconds_per_epoch(flops: int, examples: int) -> float:
    return examples * flops * TRAINING_COST_IN_FORWARD_PASSES / GPU_SUSTAINED_FLOPS


def measure_epoch_time(recipe, *, input_shape, num_classes: int, steps: int = 3) -> EpochTime:
    """The recipe's epoch on this machine (`measure_training_rate`) and on the assumed GPU (from FLOPs)."""
    examples = examples_per_epoch(recipe.data.dataset, recipe.data.validation_fraction)
    rate, model = measure_training_rate(recipe, input_shape=input_shape, num_classes=num_classes, steps=steps)
    flops = forward_flops(model)
    return EpochTime(
        forward_flops=flops,
        examples_per_epoch=examples,
        cpu_images_per_second=rate,
        cpu_seconds_per_epoch=examples / rate,
        gpu_seconds_per_epoch=gpu_seconds_per_epoch(flops, examples),
    )


def measure_training_rate(recipe, *, input_shape, num_classes: int, steps: int = 3):
    """Images/s of `steps` training steps of the recipe's compiled model on synthetic data of `input_shape`.

    The first `steps` trace and warm up; the next `steps` are timed. The batch is one tensor in memory,
    so the rate is the model's alone (bench/data_loading.py sets it beside the input pipelines' rates).

    Returns:
        `(images per second, the model)`.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from kerasdrop.data.core import DatasetInfo
    from kerasdrop.training.build import build_model, compile_for_training

    batch = recipe.training.batch_size
    info = DatasetInfo(
        name="synthetic",
        input_shape=tuple(input_shape),
        class_names=tuple(map(str, range(num_classes))),
        pixel_range=(0.0, 255.0),
        num_train=steps * batch,
        num_validation=0,
        num_test=0,
    )
    keras.utils.set_random_seed(0)
    model = build_model(recipe, info, tf.distribute.get_strategy())
    compile_for_training(model, recipe.training, steps_per_epoch=steps)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, *input_shape)).astype("float32")
    labels = rng.integers(0, num_classes, batch).astype("int32")
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # traces the step
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - started), model
