"""What a batch saves per row, the reason server-side batching can or cannot win on this machine.

LeNet-5 at 32x32x1 and resnet18 at 224x224x3 (exported as `bench/serve_latency.py` exports them) in
ONNX Runtime, the way `kerasdrop serve --backend onnx` runs them: intra-op threads 1 (concurrent
requests) and all cores (a request alone), spinning off. For each batch size, the median time per
row over at least 2 s.

    .venv/bin/python bench/batch_cost.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import tempfile
import time

BATCHES = (1, 4, 8, 16)


MODELS = {"lenet5": (32, 32, 1), "resnet18": (224, 224, 3)}


def per_row_seconds(session, shape: tuple, batch: int, seconds: float) -> float:
    import numpy as np

    images = np.random.default_rng(0).uniform(0, 255, (batch, *shape)).astype("float32")
    feed = {session.get_inputs()[0].name: images}
    session.run(None, feed)
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default: 2)")
    args = parser.parse_args()
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from kerasdrop.exporting import export
    from kerasdrop.serving.models.backends import _onnx_session
    from kerasdrop.zoo import create_model

    repo = pathlib.Path(tempfile.mkdtemp(prefix="kerasdrop-batch-cost-")) / "export"
    cores = os.cpu_count() or 1
    print(f"ONNX Runtime, median ms per row over {args.seconds:g} s per cell")
    print(
        f"  {'model':10} {'intra-op threads':18}"
        + "".join(f"{f'batch {b}':>10}" for b in BATCHES)
        + "   batch 16 vs 1"
    )
    for name, shape in MODELS.items():
        keras.utils.set_random_seed(0)
        model = create_model(name, num_classes=10, input_shape=shape, input_range=(0, 255))
        path = export(model, name=name, repo=repo, models_config=None).path / "model.onnx"
        for threads in sorted({1, cores}):
            session = _onnx_session(path, threads=threads)
            rows = [per_row_seconds(session, shape, batch, args.seconds) for batch in BATCHES]
            print(
                f"  {name:10} {threads:<18}"
                + "".join(f"{row * 1e3:10.3f}" for row in rows)
                + f"   {rows[-1] / rows[0]:10.2f}x"
            )


if __name__ == "__main__":
    main()
