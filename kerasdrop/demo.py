"""`make demo`: a tour of the zoo — one model per family, its head, and a forward pass.

Later stages (train, export, serve) extend this tour as they land.
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


def main() -> None:
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
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


if __name__ == "__main__":
    main()
