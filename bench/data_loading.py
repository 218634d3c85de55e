"""Input pipeline vs training step, in images/s: which one bounds an epoch, for three kinds of source.

For each source, the kerasdrop training pipeline (`load_dataset(...).train`: decode, cast, cache,
shuffle, batch, prefetch) is read alone, with no model: once cold (the first epoch, which reads and
decodes every image and fills the cache) and then cached (the later epochs, best of 3). Beside it,
the training step of the model its shipped recipe trains, on one in-memory batch (no input pipeline).
The sources: the embedded digits; a folder of JPEGs this script writes (under resnet18 and under the
small lenet5); TFDS's `mnist` builder downloading and preparing from local files (MNIST's format,
written here; nothing leaves the machine). The goal: cached epochs feed the model at least twice as
fast as it trains, so from the second epoch on the model, not the input, bounds an epoch.

    .venv/bin/python bench/data_loading.py [--images 3000] [--steps 2]
"""

from __future__ import annotations

import argparse
import gzip
import pathlib
import tempfile
import time


def write_jpeg_folder(root: pathlib.Path, images: int, classes: int = 10, size: int = 32) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(images):
        label = index % classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg", quality=90)


def write_mnist_files(root: pathlib.Path, train: int, test: int) -> None:
    """MNIST's four gzip'd IDX files with random pixels, for TFDS's `mnist` builder to prepare from."""
    import numpy as np

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as file:
            file.write(b"\0" * 16 + rng.integers(0, 256, (count, 28, 28), dtype=np.uint8).tobytes())
        with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as file:
            file.write(b"\0" * 8 + (np.arange(count) % 10).astype(np.uint8).tobytes())


def pipeline_rates(pipeline, examples: int, passes: int = 3) -> tuple[float, float]:
    """Images/s of the first pass (cold) and the best later pass (cached) over a batched pipeline."""
    rates = []
    for _ in range(1 + passes):
        started = time.perf_counter()
        for _batch in pipeline:
            pass
        rates.append(examples / (time.perf_counter() - started))
    return rates[0], max(rates[1:])


def prepare_tfds_from_local_files(workdir: pathlib.Path, train: int, test: int) -> tuple[str, float]:
    """TFDS's mnist builder pointed at local copies of its files; returns the data dir and prepare seconds."""
    from tensorflow_datasets.image_classification import mnist

    write_mnist_files(workdir / "mnist_files", train, test)
    # TFDS copies a URL that does not start with http (a path) instead of fetching it.
    mnist.MNIST.URL = f"{workdir / 'mnist_files'}/"
    mnist._TRAIN_EXAMPLES, mnist._TEST_EXAMPLES = train, test
    import tensorflow_datasets as tfds

    from kerasdrop.data.download import download_and_prepare

    data_dir = str(workdir / "tfds")
    started = time.perf_counter()
    download_and_prepare(tfds.builder("mnist", data_dir=data_dir), "mnist", data_dir)
    return data_dir, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=int,
        default=3000,
        help="JPEGs in the folder and MNIST training images (default: 3000)",
    )
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per model (default: 2)")
    args = parser.parse_args()
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow_datasets as tfds

    from kerasdrop.data import load_dataset
    from kerasdrop.training.epoch_time import measure_training_rate
    from kerasdrop.training.recipe import load_recipe

    tfds.disable_progress_bar()  # the prepare is timed, not watched
    models = pathlib.Path(__file__).resolve().parents[1] / "models"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-data-bench-"))
    write_jpeg_folder(workdir / "jpegs", args.images)
    data_dir, prepare_seconds = prepare_tfds_from_local_files(workdir, args.images, args.images // 5)
    sources = [  # label, spec, recipe whose model and batch size go with it, load_dataset options
        ("digits (8x8x1)", "digits", "lenet5_digits", {}),
        (f"folder: {args.images} JPEGs 32x32x3", f"folder:{workdir / 'jpegs'}", "resnet18_cifar10", {}),
        # The same JPEGs under a small model (lenet5 at its digits recipe's batch): decoding can bound the first epoch.
        (f"folder: {args.images} JPEGs 32x32x3", f"folder:{workdir / 'jpegs'}", "lenet5_digits", {}),
        ("tfds:mnist from local files", "mnist", "simple_cnn_mnist", {"data_dir": data_dir, "offline": True}),
    ]
    print(
        f"input pipeline alone (kerasdrop's train pipeline: cold = 1st epoch, cached = best later epoch) vs the "
        f"training step of the recipe's model on an in-memory batch ({args.steps} steps after {args.steps} warm-up); "
        f"TFDS prepared {args.images + args.images // 5} MNIST-format images from local files in "
        f"{prepare_seconds:.1f} s"
    )
    print(
        f"  {'source':30} {'batch':>5} {'pipeline 1st epoch':>19} {'pipeline cached':>16} {'training step':>14} "
        f"{'model':>11}   1st epoch bound by (pipeline/step)"
    )
    checks = []
    for label, spec, recipe_name, options in sources:
        recipe = load_recipe(models / f"{recipe_name}.toml")
        data = load_dataset(spec, batch_size=recipe.training.batch_size, **options)
        cold, cached = pipeline_rates(data.train, data.info.num_train)
        model_rate, _ = measure_training_rate(
            recipe, input_shape=data.info.input_shape, num_classes=data.info.num_classes, steps=args.steps
        )
        bound = "input pipeline" if cold < model_rate else "model"
        print(
            f"  {label:30} {recipe.training.batch_size:5d} {cold:13.0f} img/s {cached:10.0f} img/s "
            f"{model_rate:8.0f} img/s {recipe.model.name:>11}   {bound} ({cold / model_rate:.1f}x)"
        )
        checks.append((f"{label}, {recipe.model.name}: cached pipeline / step", cached / model_rate))
    print(f"  {'target':58} {'measured':>9} {'goal':>8}  result")
    for label, ratio in checks:
        print(f"  {label:58} {ratio:8.1f}x {'>= 2.0x':>8}  {'PASS' if ratio >= 2.0 else 'FAIL'}")


if __name__ == "__main__":
    main()
