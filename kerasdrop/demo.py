"""Helpers for `make demo`: a tour of the zoo, and the classic serving mistake to show export refuse it.

    python -m kerasdrop.demo tour
    python -m kerasdrop.demo make-broken runs/demo/model.keras runs/demo/broken.keras
"""

from __future__ import annotations

import time

# One registered model per family, at an input it is commonly trained on.
TOUR = [
    ("mlp", (8, 8, 1), (0, 16)),          # the embedded digits data set: 8x8 pixels in 0..16
    ("simple_cnn", (28, 28, 1), (0, 255)),
    ("lenet5", (8, 8, 1), (0, 16)),
    ("alexnet", (32, 32, 3), (0, 255)),
    ("vgg11", (32, 32, 3), (0, 255)),
    ("resnet18", (32, 32, 3), (0, 255)),
    ("keras_app:MobileNetV2", (32, 32, 3), (0, 255)),
]


def tour() -> None:
    import numpy as np

    import kerasdrop
    from kerasdrop.cli import describe_head

    print(f"kerasdrop zoo: {', '.join(kerasdrop.list_models())} (+ keras_app:<Name>)\n")
    rng = np.random.default_rng(0)
    for name, shape, pixel_range in TOUR:
        started = time.perf_counter()
        model = kerasdrop.create_model(name, num_classes=10, input_shape=shape, input_range=pixel_range)
        images = rng.uniform(*pixel_range, size=(4, *shape)).astype("float32")
        inference = np.asarray(model(images, training=False))
        repeat = np.asarray(model(images, training=False))
        training = np.asarray(model(images, training=True))
        print(f"{name}  input {shape}  {model.count_params():,} params  ({time.perf_counter() - started:.1f}s)")
        print(f"  head: {describe_head(model)}")
        print(f"  predicted classes {inference.argmax(axis=1).tolist()}, "
              f"inference repeatable: {np.array_equal(inference, repeat)}, "
              f"training-mode call differs: {not np.allclose(inference, training)}")


def make_broken(source: str, target: str) -> None:
    """Saves a copy of a model whose head dropout layers are pinned to `training=True`.

    The mistake this reproduces: `Dropout(rate)(x, training=True)` in a functional model, which
    serves predictions with dropout on wherever the model is traced without `training=False`.
    """
    import keras

    from kerasdrop.zoo.rewire import head_dropout_layers

    model = keras.saving.load_model(source)
    pinned = {layer.name for layer in head_dropout_layers(model)}

    def call_layer(layer, *args, **kwargs):
        if layer.name in pinned:
            kwargs["training"] = True
        return layer(*args, **kwargs)

    broken = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_layer)
    broken.save(target)
    print(f"wrote {target}: {model.name} with {', '.join(sorted(pinned))} called with training=True")


def main(argv=None) -> None:
    import sys

    from kerasdrop._quiet import import_tensorflow_quietly

    argv = sys.argv[1:] if argv is None else argv
    import_tensorflow_quietly()
    if argv[:1] == ["make-broken"] and len(argv) == 3:
        make_broken(argv[1], argv[2])
    elif argv in ([], ["tour"]):
        tour()
    else:
        raise SystemExit("usage: python -m kerasdrop.demo [tour | make-broken SOURCE.keras TARGET.keras]")


if __name__ == "__main__":
    main()
