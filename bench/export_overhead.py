"""Export overhead and served latency, side by side in one run.

1. lenet5 (8x8x1, the digits model `make demo` trains): bare `model.export` (SavedModel) plus a bare
   tf2onnx conversion, vs `kerasdrop export` (verify the Keras model, write both formats and the
   warmup file, re-verify the artefacts, publish). Best of --rounds each. Goal: ratio <= 3.0.
2. Latency of the exported model at batch 1 and 64: SavedModel signature vs ONNX Runtime vs
   `model.predict` vs a direct `model(x, training=False)` call.
3. Every format (`--formats savedmodel,onnx,litert,openvino`): each one's export seconds (its writer;
   the re-verification of all of them is one more figure), and its batch-1 latency in the runtime the
   verifier runs it in, beside ONNX Runtime's as a ratio. On a shared machine only the ratios mean
   anything (every runtime measured in the same run, interleaved).

    .venv/bin/python bench/export_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time


def best_seconds(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def latency_ms(function, repeats: int) -> tuple[float, float]:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import numpy as np
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from kerasdrop.exporting import export
    from kerasdrop.exporting.savedmodel import input_signature, serving_function
    from kerasdrop.zoo import create_model

    keras.utils.set_random_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(8, 8, 1), input_range=(0, 16))
    work = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-bench-"))
    counter = iter(range(10_000))

    def bare():
        target = work / f"bare-{next(counter)}"
        model.export(str(target), verbose=False)
        signature = input_signature(model)
        function = tf.function(serving_function(model), input_signature=signature)
        tf2onnx.convert.from_function(
            function, input_signature=signature, opset=17, output_path=str(target / "model.onnx")
        )

    def ours():
        export(model, name="lenet5", repo=work / "repo", models_config=None)

    bare()
    ours()  # warm-up: first traces and tf2onnx imports
    bare_seconds = best_seconds(bare, args.rounds)
    ours_seconds = best_seconds(ours, args.rounds)
    print(f"export of lenet5 (8x8x1), best of {args.rounds}; TF {tf.__version__}, Keras {keras.__version__}")
    print(f"  bare model.export + tf2onnx:                         {bare_seconds:6.2f} s")
    print(f"  kerasdrop export (verify + both formats + re-verify): {ours_seconds:6.2f} s")
    print(f"  ratio kerasdrop / bare: {ours_seconds / bare_seconds:.2f}  (goal <= 3.0)")

    version_dir = sorted((work / "repo" / "lenet5").iterdir(), key=lambda p: int(p.name))[-1]
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    session = onnxruntime.InferenceSession(
        str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    print("latency in ms, median / p99 (single-threaded caller):")
    print(
        f"  {'batch':>5}  {'SavedModel':>15}  {'ONNX Runtime':>15}  {'model.predict':>15}  {'model(x)':>15}"
    )
    for batch, repeats in ((1, 300), (64, 100)):
        images = np.random.default_rng(batch).uniform(0, 16, (batch, 8, 8, 1)).astype("float32")
        tensor = tf.constant(images)
        rows = [
            latency_ms(lambda tensor=tensor: signature(images=tensor), repeats),
            latency_ms(lambda images=images: session.run(None, {"images": images}), repeats),
            latency_ms(lambda images=images: model.predict(images, verbose=0), max(repeats // 5, 20)),
            latency_ms(lambda images=images: model(images, training=False), repeats),
        ]
        print(f"  {batch:>5}  " + "  ".join(f"{median:7.3f} / {p99:6.3f}" for median, p99 in rows))
    every_format(model, work, tf, np)


def every_format(model, work: pathlib.Path, tf, np) -> None:
    """Section 3: each format's export seconds and batch-1 latency, as ratios to ONNX Runtime's."""
    from kerasdrop import layout
    from kerasdrop.exporting import export
    from kerasdrop.exporting.formats import FORMATS
    from kerasdrop.verification import runtimes

    result = export(
        model, name="lenet5_formats", repo=work / "repo", formats=list(FORMATS), models_config=None
    )
    path = result.path
    images = np.random.default_rng(1).uniform(0, 16, (1, 8, 8, 1)).astype("float32")
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    tensor = tf.constant(images)
    runner, _ = runtimes.litert_signature(path / layout.TFLITE_FILE)
    compiled, _ = runtimes.openvino_compiled(path / layout.OPENVINO_XML_FILE)
    session = runtimes.onnx_session(path / layout.ONNX_FILE)
    calls = {
        "savedmodel": lambda: signature(images=tensor),
        "onnx": lambda: session.run(None, {"images": images}),
        "litert": lambda: runner(images=images),
        "openvino": lambda: compiled({0: images}),
    }
    # Interleaved rounds, so a neighbour's load falls on every runtime alike; the median of all rounds.
    samples = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(30):
        for name, call in calls.items():
            samples[name].append(latency_ms(call, 10)[0])
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print("every format (lenet5 8x8x1; the machine may be shared: compare the ratios, not the milliseconds)")
    print(f"  {'format':<11} {'runtime':<12} {'export s':>9} {'b1 median ms':>13} {'b1 / onnxruntime':>17}")
    for name, spec in FORMATS.items():
        print(
            f"  {name:<11} {spec.runtime:<12} {result.seconds.get(name, 0.0):9.2f} {medians[name]:13.3f} "
            f"{medians[name] / medians['onnx']:17.2f}"
        )
    print(
        f"  re-verification of all four written formats: {result.seconds['reverify']:.2f} s; "
        f"largest difference from Keras: "
        + ", ".join(
            f"{name} {figures['max_difference_vs_keras']:.2g}" for name, figures in result.formats.items()
        )
    )


if __name__ == "__main__":
    main()
