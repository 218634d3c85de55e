"""Time per epoch of the real-data recipes: measured on this CPU, estimated for a GPU from the model's FLOPs.

For each recipe, its compiled model is trained for a few steps on synthetic data of the data set's
shape (the data sets are not downloaded here), after as many warm-up steps; an epoch is the TFDS
training split less the validation share. The GPU figure is FLOPs x 3 (forward and backward) at an
assumed 10 TFLOP/s (kerasdrop/training/epoch_time.py), not a run. The recipes' `[expect]`
`cpu_seconds_per_epoch` and `gpu_seconds_per_epoch` are this script's output.

    .venv/bin/python bench/recipe_epoch_time.py [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import pathlib

RECIPES = {  # recipe -> (input shape, classes) of its data set
    "simple_cnn_mnist": ((28, 28, 1), 10),
    "resnet18_cifar10": ((32, 32, 3), 10),
    "vgg16_cifar10": ((32, 32, 3), 10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per recipe (default: 3)")
    args = parser.parse_args()
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from kerasdrop.training.epoch_time import GPU_SUSTAINED_FLOPS, measure_epoch_time
    from kerasdrop.training.recipe import load_recipe

    models = pathlib.Path(__file__).resolve().parents[1] / "models"
    print(
        f"training step on synthetic data of each data set's shape, {args.steps} steps timed after "
        f"{args.steps} warm-up; {os.cpu_count()} CPU cores; GPU: FLOPs x 3 at an assumed "
        f"{GPU_SUSTAINED_FLOPS / 1e12:g} TFLOP/s (estimate, not run)"
    )
    print(
        f"  {'recipe':18} {'batch':>5} {'MFLOP/img':>10} {'examples':>9} {'CPU img/s':>10} "
        f"{'CPU s/epoch':>12} {'GPU s/epoch':>12}"
    )
    for name, (shape, classes) in RECIPES.items():
        recipe = load_recipe(models / f"{name}.toml")
        timing = measure_epoch_time(recipe, input_shape=shape, num_classes=classes, steps=args.steps)
        print(
            f"  {name:18} {recipe.training.batch_size:5d} {timing.forward_flops / 1e6:10.1f} "
            f"{timing.examples_per_epoch:9d} {timing.cpu_images_per_second:10.1f} "
            f"{timing.cpu_seconds_per_epoch:12.4g} {timing.gpu_seconds_per_epoch:12.3g}"
        )


if __name__ == "__main__":
    main()
