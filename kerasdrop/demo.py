"""Helpers for `make demo`: a tour of the zoo, and the classic serving mistake to show export refuse it.

python -m kerasdrop.demo tour
python -m kerasdrop.demo make-broken runs/demo/model.keras runs/demo/broken.keras
python -m kerasdrop.demo serve-and-predict export lenet5
"""

from __future__ import annotations

import time

# One registered model per family, at an input it is commonly trained on.
TOUR = [
    ("mlp", (8, 8, 1), (0, 16)),  # the embedded digits data set: 8x8 pixels in 0..16
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
    from kerasdrop.zoo.head import describe_head

    print(f"kerasdrop zoo: {', '.join(kerasdrop.list_models())} (+ keras_app:<Name>)\n")
    rng = np.random.default_rng(0)
    for name, shape, pixel_range in TOUR:
        started = time.perf_counter()
        model = kerasdrop.create_model(name, num_classes=10, input_shape=shape, input_range=pixel_range)
        images = rng.uniform(*pixel_range, size=(4, *shape)).astype("float32")
        inference = np.asarray(model(images, training=False))
        repeat = np.asarray(model(images, training=False))
        training = np.asarray(model(images, training=True))
        print(
            f"{name}  input {shape}  {model.count_params():,} params  ({time.perf_counter() - started:.1f}s)"
        )
        print(f"  head: {describe_head(model)}")
        print(
            f"  predicted classes {inference.argmax(axis=1).tolist()}, "
            f"inference repeatable: {np.array_equal(inference, repeat)}, "
            f"training-mode call differs: {not np.allclose(inference, training)}"
        )


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


def serve_and_predict(repo: str, model: str, rest_port: int = 8501, grpc_port: int = 8500) -> None:
    """Starts `kerasdrop serve`, sends a digits test image over REST and gRPC, stops the server."""
    import pathlib
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    import numpy as np

    from kerasdrop.data import load_dataset

    # The first image of the digits test split the demo model never trained on, in the data set's
    # own 0..16 pixel values: the model rescales them itself.
    images, labels = next(iter(load_dataset("digits", batch_size=1, seed=0).test))
    sample = pathlib.Path("runs/demo/digit.npy")
    sample.parent.mkdir(parents=True, exist_ok=True)
    np.save(sample, images.numpy()[0])
    print(f"test image {sample}: a handwritten {int(labels[0])} from the digits test split")
    command = [
        sys.executable,
        "-m",
        "kerasdrop.cli",
        "serve",
        "--repo",
        repo,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{rest_port}/v1/models/{model}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"kerasdrop serve exited early:\n{server.stdout.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("kerasdrop serve did not answer within 120 s")
        print(f"$ kerasdrop serve --repo {repo}   (pid {server.pid}, REST :{rest_port}, gRPC :{grpc_port})")
        for target in (f"http://127.0.0.1:{rest_port}", f"grpc://127.0.0.1:{grpc_port}"):
            print(f"$ kerasdrop predict --url {target} --model {model} {sample}", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kerasdrop.cli",
                    "predict",
                    "--url",
                    target,
                    "--model",
                    model,
                    str(sample),
                ],
                check=True,
            )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        print(f"kerasdrop serve stopped on SIGTERM (exit status {code})")
    if code != 0:
        raise SystemExit(code)


def main(argv=None) -> None:
    import sys

    from kerasdrop._quiet import import_tensorflow_quietly

    argv = sys.argv[1:] if argv is None else argv
    import_tensorflow_quietly()
    if argv[:1] == ["make-broken"] and len(argv) == 3:
        make_broken(argv[1], argv[2])
    elif argv[:1] == ["serve-and-predict"] and len(argv) == 3:
        serve_and_predict(argv[1], argv[2])
    elif argv in ([], ["tour"]):
        tour()
    else:
        raise SystemExit(
            "usage: python -m kerasdrop.demo [tour | make-broken SOURCE.keras TARGET.keras | "
            "serve-and-predict REPO MODEL]"
        )


if __name__ == "__main__":
    main()
