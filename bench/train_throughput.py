"""Training throughput: plain `model.fit` on NumPy arrays vs the kerasdrop training path, side by side.

The same model (simple_cnn, the keras-io MNIST convnet), data (10,000 synthetic 28x28x1 images,
10 classes) and batch size (keras-io's 128). Each configuration is warmed up (tracing), then the
three are timed in interleaved rounds. This shared 2-core machine swings between two speed regimes
(about 3,900 and 7,000+ images/s for the same configuration), so the best round of each is compared
(as timeit does) and every round is printed.
Goal: ratio >= 2.0. The float32 default and the opt-in bfloat16 path are both printed.

    .venv/bin/python bench/train_throughput.py [--rounds 3] [--epochs 1] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default: 5)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed fit (default: 1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from kerasdrop.data.core import batched_pipeline
    from kerasdrop.data.synthetic import make_synthetic_arrays
    from kerasdrop.training.build import compile_for_training
    from kerasdrop.training.recipe import TrainingSection
    from kerasdrop.zoo import create_model

    images, labels = make_synthetic_arrays((28, 28, 1), 10, examples_per_class=args.examples // 10, seed=0)
    examples = len(labels)
    steps_per_epoch = -(-examples // args.batch_size)
    pipeline = batched_pipeline(tf.data.Dataset.from_tensor_slices((images, labels)),
                                batch_size=args.batch_size, seed=0, shuffle=True)

    def build(precision="float32"):
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(0)
        model = create_model("simple_cnn", num_classes=10, input_shape=(28, 28, 1))
        keras.mixed_precision.set_global_policy("float32")
        return model

    # 1. Plain Keras: defaults everywhere (jit_compile="auto", steps_per_execution=1), NumPy input.
    plain = build()
    plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # 2. kerasdrop: the compile settings and cached tf.data pipeline `kerasdrop train` uses.
    ours = build()
    compile_for_training(ours, TrainingSection(batch_size=args.batch_size), steps_per_epoch=steps_per_epoch)
    # 3. kerasdrop with `training.precision = "mixed_bfloat16"` (opt-in; saved models are float32).
    mixed = build("mixed_bfloat16")
    compile_for_training(mixed, TrainingSection(batch_size=args.batch_size, precision="mixed_bfloat16"),
                         steps_per_epoch=steps_per_epoch)
    configurations = {
        "plain": (plain, dict(x=images, y=labels, batch_size=args.batch_size)),
        "float32": (ours, dict(x=pipeline, shuffle=False)),  # the pipeline shuffles itself
        "mixed_bfloat16": (mixed, dict(x=pipeline, shuffle=False)),
    }
    for model, fit_args in configurations.values():
        model.fit(epochs=1, verbose=0, **fit_args)  # warm-up: traces the train function, fills the cache
    rates = {name: [] for name in configurations}
    for _ in range(args.rounds):
        for name, (model, fit_args) in configurations.items():
            started = time.perf_counter()
            model.fit(epochs=args.epochs, verbose=0, **fit_args)
            rates[name].append(examples * args.epochs / (time.perf_counter() - started))
    best = {name: max(values) for name, values in rates.items()}

    print(f"simple_cnn, {examples} images 28x28x1, batch {args.batch_size}; best of {args.rounds} interleaved "
          f"rounds of {args.epochs} epoch(s); TF {tf.__version__}, Keras {keras.__version__}")
    print(f"  plain model.fit (NumPy; Keras defaults: jit_compile={plain.jit_compile}, "
          f"steps_per_execution={plain.steps_per_execution})  {best['plain']:8.0f} images/s")
    print(f"  kerasdrop train path (cached tf.data; jit_compile={ours.jit_compile}, "
          f"steps_per_execution={ours.steps_per_execution}) {best['float32']:8.0f} images/s")
    print(f"  kerasdrop train path + precision=mixed_bfloat16 (opt-in)          {best['mixed_bfloat16']:8.0f} images/s")
    print(f"  ratio kerasdrop float32 / plain:        {best['float32'] / best['plain']:.2f}  (goal >= 2.0)")
    print(f"  ratio kerasdrop mixed_bfloat16 / plain: {best['mixed_bfloat16'] / best['plain']:.2f}  (goal >= 2.0)")
    print("  all rounds (images/s): " + "; ".join(f"{name} " + ", ".join(f"{v:.0f}" for v in values)
                                              for name, values in rates.items()))


if __name__ == "__main__":
    main()
