"""Training throughput: plain `model.fit` vs the kerasdrop training path, each in its own process, in
interleaved rounds.

Two cases: simple_cnn (the keras-io MNIST convnet) on 28x28x1 at keras-io's batch 128, and lenet5 on
the digits recipe's 8x8x1 at its batch 32; 10,000 synthetic images each. Configurations:
  plain              model.fit on NumPy arrays, Keras' defaults, TensorFlow's default threads
  float32            kerasdrop's compile (steps_per_execution, no XLA) and cached tf.data pipeline
  float32, 1 thread  the same with one intra-op and one inter-op thread (what a study worker uses)
  mixed_bfloat16     the float32 configuration computing in bfloat16; only where the CPU has it natively
                     (and its 1-thread variant)
  float32, batch x4  simple_cnn only: the float32 configuration at 4x the batch (larger GEMMs per op)
  float32, XLA       simple_cnn only: the float32 configuration compiled with XLA (jit_compile=True)
  float32, NCHW      simple_cnn only: the same model in channels-first layout (oneDNN's NCHW kernels)
  float32, oneDNN off   simple_cnn only: TensorFlow's own Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0)
  float32, oneDNN AVX2  simple_cnn only: oneDNN limited to its AVX2 primitives (ONEDNN_MAX_CPU_ISA=AVX2)
Thread pools are fixed when TensorFlow starts, so each configuration is a worker process; the driver
warms them all, then asks each in turn for one epoch per round. This shared machine switches between
speed regimes within seconds (one regime gives a process about half the CPU of the other; the
CPU/wall column shows how much it got), so every epoch is bracketed by a float32 matmul timed just
before and just after it in the matmul worker, and each figure is taken against that bracket: "%
matmul" is the epoch's GFLOP/s over the bracket's, and "ratio to plain" compares those shares within
a round. Medians and ranges over rounds are printed. FLOP/s are training FLOPs (3 forward passes,
kerasdrop/training/epoch_time.py) per image times images/s, also against the CPU's peak
(kerasdrop/training/cpu.py states the assumptions).

Then, per case, where a float32 step's time goes, twice: one more process trains the float32 configuration
for one epoch under TensorFlow's profiler and prints each op type's share of the ops' time with its
own GFLOP/s (the FLOPs the op type computes, from the model's Conv2D and Dense layers, over its
time) against a float32 matmul timed in the same process just after; and one more trains it with
oneDNN timing each primitive it runs (ONEDNN_VERBOSE, bench/_support/onednn_verbose.py), printed
per layer and pass with its GFLOP/s, its FLOP per byte (the least its operands must move) and which
oneDNN implementation ran. Target: the best float32 configuration of simple_cnn >= 60% of the
matmul's GFLOP/s; otherwise the bench names the layer and pass that costs the most time beyond
the matmul rate, its efficiency, and whether its FLOP/byte lets memory or its kernel bound it.

    .venv/bin/python bench/train_throughput.py [--rounds 5] [--examples 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "simple_cnn": {"model": "simple_cnn", "shape": [28, 28, 1], "batch": 128},
    "lenet5": {"model": "lenet5", "shape": [8, 8, 1], "batch": 32},
}
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
CONFIGURATIONS = {
    "plain": {"plain": True},
    "float32": {},
    "float32, 1 thread": {"env": ONE_THREAD},
    "mixed_bfloat16": {"precision": "mixed_bfloat16"},
    "mixed_bfloat16, 1 thread": {"precision": "mixed_bfloat16", "env": ONE_THREAD},
    # Tried for the matmul-rate target (simple_cnn only): bigger GEMMs per op, and XLA's fused kernels.
    "float32, batch x4": {"batch_scale": 4, "cases": ("simple_cnn",)},
    "float32, XLA": {"jit_compile": True, "cases": ("simple_cnn",)},
    # The data layout: NCHW, which only oneDNN's kernels take on a CPU (TensorFlow's own need NHWC).
    "float32, NCHW": {"channels_first": True, "cases": ("simple_cnn",)},
    # The primitives: TensorFlow's own Eigen kernels instead of oneDNN's, and oneDNN limited to its
    # AVX2 implementations (its choice among primitives follows the instruction set it may use).
    "float32, oneDNN off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "cases": ("simple_cnn",)},
    "float32, oneDNN AVX2": {"env": {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "cases": ("simple_cnn",)},
}
# name, goal, configurations whose best median ratio to plain is judged
TARGETS = [
    ("float32", 1.5, tuple(name for name in CONFIGURATIONS if name.startswith("float32"))),
    ("mixed_bfloat16", 2.0, ("mixed_bfloat16", "mixed_bfloat16, 1 thread")),
]
MATMUL_SIZE = 1024
MATMUL_SHARE_GOAL = 0.6  # the best float32 configuration of simple_cnn, of the same run's matmul GFLOP/s
PROFILED_EXAMPLES = 2048  # images in the profiled epoch (after one epoch of warm-up)


def _worker(spec: dict) -> None:
    """One configuration: build, warm up, then train one epoch per 'go' line; print images/s and CPU/wall."""
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    if spec.get("profile"):
        return _profile_worker(spec, keras, tf)
    if spec.get("onednn"):
        return _onednn_worker(spec, keras, tf)
    if spec.get("matmul"):
        run_epoch, examples = _matmul_reference(tf), MATMUL_SIZE
    else:
        run_epoch, examples = _training_epoch(spec, keras, tf)
    run_epoch()  # warm-up: traces the train function, fills the cache
    print("ready", flush=True)
    for _ in sys.stdin:
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        amount = run_epoch() or examples
        wall = time.perf_counter() - started
        print(f"{amount / wall} {(_cpu_seconds() - cpu_started) / wall}", flush=True)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _training_epoch(spec: dict, keras, tf):
    from kerasdrop.data.core import batched_pipeline
    from kerasdrop.data.synthetic import make_synthetic_arrays
    from kerasdrop.training.build import compile_for_training, precision_policy
    from kerasdrop.training.recipe import TrainingSection
    from kerasdrop.zoo import create_model

    shape, batch = tuple(spec["shape"]), spec["batch"] * spec.get("batch_scale", 1)
    images, labels = make_synthetic_arrays(shape, 10, examples_per_class=spec["examples"] // 10, seed=0)
    keras.utils.set_random_seed(0)
    with precision_policy(spec.get("precision", "float32")):
        model = create_model(spec["model"], num_classes=10, input_shape=shape)
    if spec.get("channels_first"):
        model, images = _channels_first(model, keras), images.transpose(0, 3, 1, 2)
    if spec.get("plain"):  # Keras' defaults everywhere: jit_compile="auto", steps_per_execution=1
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fit_arguments = {"x": images, "y": labels, "batch_size": batch}
    else:
        training = TrainingSection(batch_size=batch, precision=spec.get("precision", "float32"))
        compile_for_training(model, training, steps_per_epoch=-(-len(labels) // batch))
        if spec.get("jit_compile"):  # before the first fit, which builds the train function
            model.jit_compile = True
        pipeline = batched_pipeline(
            tf.data.Dataset.from_tensor_slices((images, labels)), batch_size=batch, seed=0, shuffle=True
        )
        fit_arguments = {"x": pipeline, "shuffle": False}  # the pipeline shuffles itself

    def run_epoch():
        model.fit(epochs=1, verbose=0, **fit_arguments)

    run_epoch.model = model
    return run_epoch, len(labels)


def _channels_first(model, keras):
    """The same model (layers, sizes, initial weights) with its convolutions, poolings and Flatten
    in NCHW, taking NCHW images: the data layout tried for the matmul-rate target."""
    config = model.get_config()
    for layer in config["layers"]:
        layer.pop("build_config", None)  # NHWC shapes; each layer is built anew from the new input
        if layer["class_name"] == "InputLayer":
            batch, height, width, channels = layer["config"]["batch_shape"]
            layer["config"]["batch_shape"] = [batch, channels, height, width]
        elif "data_format" in layer["config"]:
            layer["config"]["data_format"] = "channels_first"
    nchw = keras.Model.from_config(config)
    for source, target in zip(model.layers, nchw.layers):
        target.set_weights(source.get_weights())  # Conv2D kernels are HWIO in both layouts
    return nchw


# Op types of TensorFlow's CPU kernels (oneDNN's `_MklNative...` and TF's own), by what they compute.
OP_FAMILIES = [
    (
        "convolution forward",
        (
            "Conv2D",
            "FusedConv2D",
            "_MklNativeConv2D",
            "_MklNativeFusedConv2D",
            "_FusedConv2D",
            "_MklConv2D",
            "_MklFusedConv2D",
        ),
    ),
    (
        "convolution backprop input",
        ("Conv2DBackpropInput", "_MklNativeConv2DBackpropInput", "_MklConv2DBackpropInput"),
    ),
    (
        "convolution backprop filter",
        (
            "Conv2DBackpropFilter",
            "_MklNativeConv2DBackpropFilter",
            "_MklNativeConv2DBackpropFilterWithBias",
            "_MklConv2DBackpropFilter",
            "_MklConv2DBackpropFilterWithBias",
        ),
    ),
    (
        "matmul (dense, all passes)",
        ("MatMul", "_MklMatMul", "_MklNativeFusedMatMul", "_FusedMatMul", "_MklFusedMatMul"),
    ),
]


def _op_family(op_type: str) -> str:
    for family, types in OP_FAMILIES:
        if op_type in types:
            return family
    if op_type.startswith(("Dataset", "Iterator")) or op_type in ("IteratorGetNext", "IteratorGetNextSync"):
        return "input pipeline (tf.data)"
    return op_type.removeprefix("_MklNative").removeprefix("_Mkl")


def _family_flops(model) -> dict[str, float]:
    """FLOPs per image each op family computes in one training step: a Conv2D layer's forward
    pass costs 2*H_out*W_out*C_out*C_in*kh*kw, its filter gradient as much, its input gradient as
    much again except for the first layer (nothing needs the gradient of the images); a Dense
    layer, 2*in*out each for forward, input gradient and weight gradient."""
    import keras

    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    denses = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dense)]

    def conv_flops(layer):
        _, height, width, channels_out = layer.output.shape
        kernel_h, kernel_w, channels_in, _ = layer.kernel.shape
        return 2 * height * width * channels_out * channels_in * kernel_h * kernel_w

    forward = [conv_flops(layer) for layer in convs]
    return {
        "convolution forward": sum(forward),
        "convolution backprop filter": sum(forward),
        "convolution backprop input": sum(forward[1:]),
        "matmul (dense, all passes)": sum(
            3 * 2 * layer.kernel.shape[0] * layer.kernel.shape[1] for layer in denses
        ),
    }


def _profile_worker(spec: dict, keras, tf) -> None:
    """Trains one epoch of PROFILED_EXAMPLES under TensorFlow's profiler (after a warm-up epoch),
    then times the matmul reference twice (the better rate is the reference). Prints one JSON line:
    wall seconds, steps, per op family [occurrences, self-time us], the families' FLOPs per image
    and the matmul's GFLOP/s."""
    import glob
    import shutil
    import tempfile

    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    run_epoch, examples = _training_epoch({**spec, "examples": PROFILED_EXAMPLES}, keras, tf)
    run_epoch()
    logdir = tempfile.mkdtemp(prefix="kerasdrop-train-profile-")
    tf.profiler.experimental.start(logdir)
    started = time.perf_counter()
    run_epoch()
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    trace = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data([trace], "framework_op_stats", {})
    shutil.rmtree(logdir, ignore_errors=True)
    if not ok:
        raise RuntimeError(f"TensorFlow's profiler could not convert its trace: {data[:200]!r}")
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    families: dict[str, list] = {}
    for row in table["rows"]:
        cells = {column: (cell or {}).get("v") for column, cell in zip(columns, row["c"])}
        if cells["type"] == "IDLE":
            continue
        entry = families.setdefault(_op_family(cells["type"]), [0, 0.0])
        entry[0] += int(cells["occurrences"])
        entry[1] += float(cells["total_self_time"])
    # The better of two timings: a burst of other load lowers one.
    matmul_gflops = max(_matmul_rate(tf), _matmul_rate(tf))
    steps = -(-examples // (spec["batch"] * spec.get("batch_scale", 1)))
    print(
        json.dumps(
            {
                "wall": wall,
                "steps": steps,
                "examples": examples,
                "families": families,
                "flops": _family_flops(run_epoch.model),
                "matmul_gflops": matmul_gflops,
            }
        ),
        flush=True,
    )


def _onednn_worker(spec: dict, keras, tf) -> None:
    """One epoch of PROFILED_EXAMPLES after a warm-up epoch, with oneDNN timing each primitive (the
    parent set ONEDNN_VERBOSE); then the matmul reference and two read bandwidths. Its last line is
    `RESULT {json}`: the epoch's start and end (ms since the epoch, oneDNN's clock), steps, the
    model's layers (to name each primitive's layer), the matmul's GFLOP/s and the bandwidths."""
    run_epoch, examples = _training_epoch({**spec, "examples": PROFILED_EXAMPLES}, keras, tf)
    run_epoch()
    window = [time.time() * 1e3]
    run_epoch()
    window.append(time.time() * 1e3)
    batch = spec["batch"] * spec.get("batch_scale", 1)
    result = {
        "window": window,
        "steps": -(-examples // batch),
        "batch": batch,
        "layers": _layer_sizes(run_epoch.model, keras),
        "matmul_gflops": max(_matmul_rate(tf), _matmul_rate(tf)),
        "read_gbytes": {f"{mib} MiB": max(_read_rate(tf, mib), _read_rate(tf, mib)) for mib in READ_MIB},
    }
    print("RESULT " + json.dumps(result), flush=True)


READ_MIB = (8, 256)  # arrays read for the bandwidth: one that fits in this CPU's caches, one that does not


def _read_rate(tf, mib: int, seconds: float = 1.0) -> float:
    """GB/s of summing a float32 array of `mib` MiB on TensorFlow's default threads."""
    data = tf.random.uniform((mib * 2**20 // 4,))
    total = tf.function(lambda: tf.reduce_sum(data))

    def read() -> float:
        total().numpy()
        return mib * 2**20 / 1e9  # GB per call, so the rate is GB/s

    return _per_second(read, seconds)


def _layer_sizes(model, keras) -> list[dict]:
    """Each Conv2D, Dense and pooling layer's name and sizes (NHWC), to match oneDNN's problems."""
    layers = []
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Conv2D | keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
            _, height_in, _, channels_in = layer.input.shape
            _, height_out, _, channels_out = layer.output.shape
            kind = "convolution" if isinstance(layer, keras.layers.Conv2D) else "pooling"
            sizes = [channels_in, channels_out, height_in, height_out]
            layers.append({"name": layer.name, "kind": kind, "sizes": sizes})
        elif isinstance(layer, keras.layers.Dense):
            layers.append({"name": layer.name, "kind": "dense", "sizes": list(layer.kernel.shape)})
    return layers


def _onednn(case: dict) -> dict:
    """The oneDNN worker's result for `case` (float32 configuration), with its primitives of the
    timed epoch."""
    from _support import onednn_verbose

    environment = dict(os.environ, ONEDNN_VERBOSE="1", ONEDNN_VERBOSE_TIMESTAMP="1")
    process = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps({**case, "onednn": True})],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    lines = process.stdout.splitlines()
    result = json.loads(
        next(line for line in reversed(lines) if line.startswith("RESULT "))[len("RESULT ") :]
    )
    start, end = result["window"]
    result["primitives"] = [p for p in onednn_verbose.parse(lines) if start <= p.timestamp_ms <= end]
    return result


PASS_NAMES = {
    "forward_training": "forward",
    "forward_inference": "forward",
    "backward_data": "data gradient",
    "backward_weights": "weight gradient",
    "backward": "backward",
}


def _primitive_label(primitive, layers: list[dict], batch: int) -> str:
    """`block1_conv1 weight gradient`, `fc1 data gradient`, `block1_pool backward`, or the kind."""
    from _support import onednn_verbose

    sizes, pass_name = onednn_verbose.shape(primitive), PASS_NAMES.get(primitive.pass_, primitive.pass_)
    for layer in layers:
        if sizes and layer["kind"] == "convolution" and primitive.kind == "convolution":
            if layer["sizes"] == [sizes["in"][2], sizes["out"][2], sizes["in"][0], sizes["out"][0]]:
                return f"{layer['name']} {pass_name}"
        elif sizes and layer["kind"] == "dense" and primitive.kind in ("inner_product", "gemm_api", "matmul"):
            inputs, units = layer["sizes"]
            rows, inner, columns = sizes["batch"], sizes["in"][0], sizes["out"][0]  # M, K, N of a GEMM
            if primitive.kind == "inner_product" and (inner, columns) == (inputs, units):
                return f"{layer['name']} {pass_name}"
            if (rows, columns) == (inputs, units) and inner <= batch:  # inputs' x output gradient
                return f"{layer['name']} weight gradient"
            if (inner, columns) == (units, inputs):  # output gradient x kernel'
                return f"{layer['name']} data gradient"
            if (inner, columns) == (inputs, units):  # a batch smaller than the others: the last
                return f"{layer['name']} forward"
        elif layer["kind"] == "pooling" and primitive.kind == "pooling":
            channels, height_in, height_out = layer["sizes"][0], layer["sizes"][2], layer["sizes"][3]
            if f"ic{channels}_ih{height_in}oh{height_out}" in primitive.problem:
                return f"{layer['name']} {pass_name}"
    return f"{primitive.kind} ({pass_name})" if pass_name != "undef" else primitive.kind


def _report_onednn(name: str, result: dict) -> str:
    """Prints oneDNN's time per layer and pass with GFLOP/s, FLOP/byte and the best rate the
    operands' bytes allow; returns a sentence naming the primitive that costs the most time beyond
    the matmul rate, and whether arithmetic or memory bounds it."""
    from _support import onednn_verbose

    steps, matmul = result["steps"], result["matmul_gflops"]
    bandwidth = max(result["read_gbytes"].values())  # the cache-resident read: the optimistic bound
    rows: dict[str, list] = {}
    for primitive in result["primitives"]:
        row = rows.setdefault(
            _primitive_label(primitive, result["layers"], result["batch"]), [0, 0.0, 0, 0, set()]
        )
        row[0] += 1
        row[1] += primitive.milliseconds
        row[2] += onednn_verbose.flops(primitive)
        row[3] += onednn_verbose.minimum_bytes(primitive)
        row[4].add(primitive.implementation)
    total = sum(row[1] for row in rows.values())
    wall = (result["window"][1] - result["window"][0]) / steps
    reads = ", ".join(f"{size} {rate:.1f} GB/s" for size, rate in result["read_gbytes"].items())
    print(
        f"\n{name}, float32: oneDNN's own timing of each primitive (ONEDNN_VERBOSE), one epoch of "
        f"{steps} steps: {total / steps:.1f} ms/step in oneDNN of {wall:.1f} ms/step wall; float32 matmul "
        f"{matmul:.1f} GFLOP/s, read bandwidth {reads} (same process)"
    )
    print(
        f"  {'layer and pass':30s} {'calls/step':>10s} {'ms/step':>8s} {'share':>6s} {'GFLOP/s':>8s} "
        f"{'% matmul':>8s} {'FLOP/byte':>9s} {'% bound':>7s}  implementation"
    )
    worst, worst_loss = None, 0.0
    for label, (calls, milliseconds, flops, moved, implementations) in sorted(
        rows.items(), key=lambda r: -r[1][1]
    ):
        cells = f"{'-':>8s} {'-':>8s} {'-':>9s} {'-':>7s}"
        if flops:
            rate, intensity = flops / milliseconds / 1e6, flops / moved
            bound = min(matmul, intensity * bandwidth)
            cells = f"{rate:8.1f} {100 * rate / matmul:7.1f}% {intensity:9.1f} {100 * rate / bound:6.0f}%"
            loss = milliseconds - flops / (matmul * 1e6)  # ms beyond what the matmul rate would take
            if loss > worst_loss:
                worst, worst_loss = (label, rate, intensity, bound, milliseconds / total), loss
        print(
            f"  {label:30s} {calls / steps:10.1f} {milliseconds / steps:8.2f} {100 * milliseconds / total:5.1f}% "
            f"{cells}  {' '.join(sorted(implementations))}"
        )
    if worst is None:
        return "no primitive with counted FLOPs ran"
    label, rate, intensity, bound, share = worst
    limit = (
        f"memory: at {intensity:.1f} FLOP/byte even the cache-resident read bandwidth ({bandwidth:.1f} GB/s) "
        f"allows only {intensity * bandwidth:.0f} GFLOP/s"
        if intensity * bandwidth < matmul
        else f"its kernel: at {intensity:.1f} FLOP/byte its operands allow the matmul rate"
    )
    summary = (
        f"{label} costs the most time beyond the matmul rate: {rate:.1f} GFLOP/s = {rate / matmul:.0%} of "
        f"the matmul, {share:.0%} of oneDNN's time; bounded by {limit}"
    )
    print(f"  {summary}")
    return summary


def _matmul_reference(tf):
    """GFLOP/s of float32 matmuls on TensorFlow's default threads: what this CPU sustains right now."""
    a = tf.random.uniform((MATMUL_SIZE, MATMUL_SIZE))

    @tf.function
    def repeated(x):
        for _ in range(20):
            x = tf.linalg.matmul(x, a) * 1e-3
        return x

    def run_epoch():
        repeated(a).numpy()
        return 20 * 2 * MATMUL_SIZE**3 / 1e9  # GFLOP per call, so the rate printed is GFLOP/s

    return run_epoch


def _start(spec: dict) -> subprocess.Popen:
    environment = dict(os.environ, **spec.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )


def _measure(workers: dict, rounds: int) -> dict:
    """Per configuration and round: images/s, CPU/wall, and the matmul's GFLOP/s timed just before
    and just after it (their mean is the configuration's reference: this machine switches between
    speed regimes within seconds, and a reference taken a round earlier can be in another)."""
    for name, process in workers.items():
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker {name} failed to start (exit {process.wait()})")

    def epoch(process) -> tuple[float, float]:
        process.stdin.write("go\n")
        process.stdin.flush()
        rate, cpu = map(float, process.stdout.readline().split())
        return rate, cpu

    matmul = workers["matmul"]
    measured = {name: {"rate": [], "cpu": [], "reference": []} for name in workers}
    for _ in range(rounds):
        for name, process in workers.items():
            if process is matmul:
                continue
            before = epoch(matmul)[0]
            rate, cpu = epoch(process)
            after = epoch(matmul)[0]
            measured[name]["rate"].append(rate)
            measured[name]["cpu"].append(cpu)
            measured[name]["reference"].append((before + after) / 2)
            measured["matmul"]["rate"] += [before, after]
    for process in workers.values():
        process.stdin.close()
        process.wait()
    return measured


def _training_flops_per_image(case: dict) -> int:
    import keras

    from kerasdrop.training.epoch_time import (
        TRAINING_COST_IN_FORWARD_PASSES,
        forward_flops,
    )
    from kerasdrop.zoo import create_model

    keras.utils.set_random_seed(0)
    return TRAINING_COST_IN_FORWARD_PASSES * forward_flops(
        create_model(case["model"], num_classes=10, input_shape=tuple(case["shape"]))
    )


def _spread(values) -> str:
    return f"{statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})"


def _report_case(name: str, case: dict, measured: dict, cpu) -> dict:
    flops = _training_flops_per_image(case)
    print(
        f"\n{name}: {case['examples']} synthetic {'x'.join(map(str, case['shape']))} images, batch "
        f"{case['batch']}; training {flops / 1e6:.2f} MFLOP/image (3 x forward)"
    )
    print(
        f"  {'configuration':24s} {'images/s median (range)':>26s} {'ratio to plain, per round':>30s} "
        f"{'GFLOP/s':>8s} {'% peak':>7s} {'% matmul':>8s} {'CPU/wall':>8s}"
    )
    ratios, shares = {}, {}

    # Each epoch against the matmul timed around it, so both ran in the same regime of the machine;
    # the ratio to plain compares those shares, round by round.
    def of_matmul(values) -> list[float]:
        return [
            rate * flops / 1e9 / reference for rate, reference in zip(values["rate"], values["reference"])
        ]

    plain = of_matmul(measured["plain"])
    for configuration, values in measured.items():
        rates, shares_of_matmul = values["rate"], of_matmul(values)
        per_round = [share / base for share, base in zip(shares_of_matmul, plain)]
        ratios[configuration] = statistics.median(per_round)
        gflops = statistics.median(rates) * flops / 1e9
        shares[configuration] = statistics.median(shares_of_matmul)
        peak = cpu.peak_flops("bfloat16" if configuration.startswith("mixed_bfloat16") else "float32")
        share_of_peak = f"{100 * gflops * 1e9 / peak:6.1f}%" if peak else "    n/a"
        print(
            f"  {configuration:24s} {_spread(rates):>26s} {ratios[configuration]:13.2f} "
            f"({min(per_round):.2f}-{max(per_round):.2f}){'':5s} {gflops:8.1f} {share_of_peak} "
            f"{100 * shares[configuration]:7.1f}% {statistics.median(values['cpu']):8.2f}"
        )
    return ratios, shares


def _matmul_rate(tf, seconds: float = 2.0) -> float:
    """GFLOP/s of the matmul reference over `seconds`, after one call to trace it."""
    return _per_second(_matmul_reference(tf), seconds)


def _per_second(step, seconds: float) -> float:
    """The work `step()` reports doing, summed over `seconds` of calls, per second; after one call
    that traces it."""
    step()
    started, done = time.perf_counter(), 0.0
    while time.perf_counter() - started < seconds:
        done += step()
    return done / (time.perf_counter() - started)


def _profile(case: dict) -> dict:
    """The profiling worker's JSON line for `case` (float32 configuration, TensorFlow's default threads)."""
    process = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps({**case, "profile": True})],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(process.stdout.strip().splitlines()[-1])


def _report_profile(name: str, profile: dict) -> str:
    """Prints where a float32 step's op time goes; returns a sentence naming what bounds the step:
    how fast the GEMM ops (convolutions, matmuls) run against the matmul, and which share of the
    ops' time is spent outside them."""
    families, steps = profile["families"], profile["steps"]
    total = sum(seconds for _, seconds in families.values())
    matmul = profile["matmul_gflops"]
    print(
        f"\n{name}, float32: where a training step's time goes (TensorFlow profiler, one epoch of "
        f"{profile['examples']} images = {steps} steps, {1e3 * profile['wall'] / steps:.1f} ms/step wall, "
        f"{total / 1e3 / steps:.1f} ms/step of op self-time summed over threads); float32 matmul in the "
        f"same process {matmul:.1f} GFLOP/s"
    )
    print(
        f"  {'op type':34s} {'calls/step':>10s} {'ms/step':>8s} {'share':>6s} {'GFLOP/s':>8s} "
        f"{'% matmul':>8s}"
    )
    ranked = sorted(families.items(), key=lambda item: -item[1][1])
    for family, (calls, micros) in ranked[:12]:
        flops = profile["flops"].get(family)
        rate = flops * profile["examples"] / (micros / 1e6) / 1e9 if flops else None
        rate_cells = f"{'-':>8s} {'-':>8s}" if rate is None else f"{rate:8.1f} {100 * rate / matmul:7.1f}%"
        share = 100 * micros / total
        print(f"  {family:34s} {calls / steps:10.1f} {micros / 1e3 / steps:8.2f} {share:5.1f}% {rate_cells}")
    rest = sum(micros for _, (_, micros) in ranked[12:])
    if rest:
        print(
            f"  {f'{len(ranked) - 12} other op types':34s} {'':10s} {rest / 1e3 / steps:8.2f} "
            f"{100 * rest / total:5.1f}%"
        )
    gemm_micros = sum(families.get(family, (0, 0.0))[1] for family in profile["flops"])
    gemm_rate = sum(profile["flops"].values()) * profile["examples"] / max(gemm_micros / 1e6, 1e-9) / 1e9
    others = [family for family, _ in ranked if family not in profile["flops"]][:3]
    gemm_share = gemm_micros / total
    summary = (
        f"the GEMM ops (convolutions, matmuls) run at {gemm_rate / matmul:.0%} of the matmul's "
        f"GFLOP/s but take {gemm_share:.0%} of the ops' time; the other {1 - gemm_share:.0%} computes "
        f"no counted FLOPs (largest: {', '.join(others)}), and the step's wall time is "
        f"{profile['wall'] * 1e6 / total:.2f}x its op time summed over threads"
    )
    print(f"  {summary}")
    return summary


def _report_targets(ratios: dict, simple_cnn_shares: dict, bound: str) -> None:
    print(
        f"\n{'target (median over rounds of the ratio to plain in the same round)':72s} measured    goal  result"
    )
    for precision, goal, configurations in TARGETS:
        for case, case_ratios in ratios.items():
            present = [name for name in configurations if name in case_ratios]
            if not present:
                print(
                    f"  {f'{case} {precision}: not measured (no native bfloat16 on this CPU)':70s} "
                    f"{'-':>8s}  >= {goal}  n/a"
                )
                continue
            best = max(present, key=case_ratios.get)
            verdict = "PASS" if case_ratios[best] >= goal else "FAIL"
            print(
                f"  {f'{case} {precision} / plain (best: {best})':70s} {case_ratios[best]:8.2f}  >= {goal}  {verdict}"
            )
    float32 = [name for name in simple_cnn_shares if not name.startswith(("plain", "mixed"))]
    best = max(float32, key=simple_cnn_shares.get)
    share = simple_cnn_shares[best]
    verdict = "PASS" if share >= MATMUL_SHARE_GOAL else "FAIL"
    print(
        f"  {f'simple_cnn float32 GFLOP/s / matmul GFLOP/s, same rounds (best: {best})':70s} {share:8.2f}  "
        f">= {MATMUL_SHARE_GOAL}  {verdict}"
    )
    if verdict == "FAIL":
        print(f"    what bounds it (simple_cnn's profile above): {bound}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default: 5)")
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(json.loads(args.worker))

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from kerasdrop.training.cpu import cpu_info

    cpu = cpu_info()
    configurations = {
        name: spec for name, spec in CONFIGURATIONS.items() if "precision" not in spec or cpu.native_bfloat16
    }
    workers = {"matmul": _start({"matmul": True})}
    for case_name, case in CASES.items():
        for name, spec in configurations.items():
            if case_name in spec.get("cases", CASES):
                workers[(case_name, name)] = _start(
                    {**case, **json.loads(json.dumps(spec)), "examples": args.examples}
                )
    measured = _measure(workers, args.rounds)
    _report_cpu(cpu, measured["matmul"]["rate"], args.rounds)
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    ratios, matmul_shares = {}, {}
    for case_name, case in CASES.items():
        ratios[case_name], matmul_shares[case_name] = _report_case(
            case_name,
            {**case, "examples": args.examples},
            {name: measured[(case_name, name)] for name in configurations if (case_name, name) in measured},
            cpu,
        )
    bounds = {case_name: _report_profile(case_name, _profile(case)) for case_name, case in CASES.items()}
    primitives = {case_name: _report_onednn(case_name, _onednn(case)) for case_name, case in CASES.items()}
    _report_targets(
        ratios, matmul_shares["simple_cnn"], f"{bounds['simple_cnn']}; {primitives['simple_cnn']}"
    )
    print(
        f"\nload average after the run: {' '.join(f'{load:.1f}' for load in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs"
    )


def _report_cpu(cpu, matmul_rates, rounds: int) -> None:
    peak32, peak16 = cpu.peak_flops("float32"), cpu.peak_flops("bfloat16")
    print(
        f"CPU: {cpu.model}, {cpu.usable_cpus} usable CPUs at {cpu.base_mhz} MHz as reported; flags "
        f"{' '.join(cpu.flags) or 'unknown'}; native bfloat16: {'yes' if cpu.native_bfloat16 else 'no'}"
    )
    if peak32:
        print(
            f"peak (assumed: {cpu.float32_flops_per_cycle()} float32 FLOP/cycle/core, bfloat16 dot products x2, "
            f"reported clock; boost is higher): float32 {peak32 / 1e9:.0f} GFLOP/s, bfloat16 {peak16 / 1e9:.0f} GFLOP/s"
        )
    print(
        f"float32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}, default threads, around every epoch: {_spread(matmul_rates)} "
        f"GFLOP/s; {rounds} interleaved rounds, one epoch per configuration each"
    )


if __name__ == "__main__":
    main()
