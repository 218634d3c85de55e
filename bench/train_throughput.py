"""Training throughput: plain `model.fit` vs the kerasdrop training path, each in its own process, in interleaved rounds.

Two cases: simple_cnn (the keras-io MNIST convnet) on 28x28x1 at keras-io's batch 128, and lenet5 on
the digits recipe's 8x8x1 at its batch 32; 10,000 synthetic images each. Configurations:
  plain              model.fit on NumPy arrays, Keras' defaults, TensorFlow's default threads
  float32            kerasdrop's compile (steps_per_execution, no XLA) and cached tf.data pipeline
  float32, 1 thread  the same with one intra-op and one inter-op thread (what a study worker uses)
  mixed_bfloat16     the float32 configuration computing in bfloat16; only where the CPU has it natively
                     (and its 1-thread variant)
Thread pools are fixed when TensorFlow starts, so each configuration is a worker process; the driver
warms them all, then asks each in turn for one epoch per round. This shared machine switches between
speed regimes (the CPU/wall column shows how much CPU a process got), so each round's ratio is taken
between neighbours in time, and medians and ranges over rounds are printed. FLOP/s are training FLOPs
(3 forward passes, kerasdrop/training/epoch_time.py) per image times images/s, against the CPU's peak
(kerasdrop/training/cpu.py states the assumptions) and, round by round, a float32 matmul timed in the same round.

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
}
# name, goal, configurations whose best median ratio to plain is judged
TARGETS = [("float32", 1.5, ("float32", "float32, 1 thread")),
           ("mixed_bfloat16", 2.0, ("mixed_bfloat16", "mixed_bfloat16, 1 thread"))]
MATMUL_SIZE = 1024


def _worker(spec: dict) -> None:
    """One configuration: build, warm up, then train one epoch per 'go' line; print images/s and CPU/wall."""
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

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

    shape, batch = tuple(spec["shape"]), spec["batch"]
    images, labels = make_synthetic_arrays(shape, 10, examples_per_class=spec["examples"] // 10, seed=0)
    keras.utils.set_random_seed(0)
    with precision_policy(spec.get("precision", "float32")):
        model = create_model(spec["model"], num_classes=10, input_shape=shape)
    if spec.get("plain"):  # Keras' defaults everywhere: jit_compile="auto", steps_per_execution=1
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fit_arguments = {"x": images, "y": labels, "batch_size": batch}
    else:
        training = TrainingSection(batch_size=batch, precision=spec.get("precision", "float32"))
        compile_for_training(model, training, steps_per_epoch=-(-len(labels) // batch))
        pipeline = batched_pipeline(tf.data.Dataset.from_tensor_slices((images, labels)), batch_size=batch,
                                    seed=0, shuffle=True)
        fit_arguments = {"x": pipeline, "shuffle": False}  # the pipeline shuffles itself

    def run_epoch():
        model.fit(epochs=1, verbose=0, **fit_arguments)

    return run_epoch, len(labels)


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
    return subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)


def _measure(workers: dict, rounds: int) -> dict:
    for name, process in workers.items():
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker {name} failed to start (exit {process.wait()})")
    measured = {name: {"rate": [], "cpu": []} for name in workers}
    for _ in range(rounds):
        for name, process in workers.items():
            process.stdin.write("go\n")
            process.stdin.flush()
            rate, cpu = map(float, process.stdout.readline().split())
            measured[name]["rate"].append(rate)
            measured[name]["cpu"].append(cpu)
    for process in workers.values():
        process.stdin.close()
        process.wait()
    return measured


def _training_flops_per_image(case: dict) -> int:
    import keras

    from kerasdrop.training.epoch_time import TRAINING_COST_IN_FORWARD_PASSES, forward_flops
    from kerasdrop.zoo import create_model

    keras.utils.set_random_seed(0)
    return TRAINING_COST_IN_FORWARD_PASSES * forward_flops(create_model(case["model"], num_classes=10,
                                                                        input_shape=tuple(case["shape"])))


def _spread(values) -> str:
    return f"{statistics.median(values):8.0f} ({min(values):.0f}-{max(values):.0f})"


def _report_case(name: str, case: dict, measured: dict, cpu, matmul_gflops: list[float]) -> dict:
    flops = _training_flops_per_image(case)
    print(f"\n{name}: {case['examples']} synthetic {'x'.join(map(str, case['shape']))} images, batch "
          f"{case['batch']}; training {flops / 1e6:.2f} MFLOP/image (3 x forward)")
    print(f"  {'configuration':24s} {'images/s median (range)':>26s} {'ratio to plain, per round':>30s} "
          f"{'GFLOP/s':>8s} {'% peak':>7s} {'% matmul':>8s} {'CPU/wall':>8s}")
    ratios = {}
    plain = measured["plain"]["rate"]
    for configuration, values in measured.items():
        rates = values["rate"]
        per_round = [rate / base for rate, base in zip(rates, plain)]
        ratios[configuration] = statistics.median(per_round)
        gflops = statistics.median(rates) * flops / 1e9
        # Against the matmul of the same round, so both ran in the same regime of the machine.
        share_of_matmul = statistics.median(rate * flops / 1e9 / reference
                                            for rate, reference in zip(rates, matmul_gflops))
        peak = cpu.peak_flops("bfloat16" if configuration.startswith("mixed_bfloat16") else "float32")
        share_of_peak = f"{100 * gflops * 1e9 / peak:6.1f}%" if peak else "    n/a"
        print(f"  {configuration:24s} {_spread(rates):>26s} {ratios[configuration]:13.2f} "
              f"({min(per_round):.2f}-{max(per_round):.2f}){'':5s} {gflops:8.1f} {share_of_peak} "
              f"{100 * share_of_matmul:7.1f}% {statistics.median(values['cpu']):8.2f}")
    return ratios


def _report_targets(ratios: dict) -> None:
    print(f"\n{'target (median over rounds of the ratio to plain in the same round)':72s} measured    goal  result")
    for precision, goal, configurations in TARGETS:
        for case, case_ratios in ratios.items():
            present = [name for name in configurations if name in case_ratios]
            if not present:
                print(f"  {f'{case} {precision}: not measured (no native bfloat16 on this CPU)':70s} "
                      f"{'-':>8s}  >= {goal}  n/a")
                continue
            best = max(present, key=case_ratios.get)
            verdict = "PASS" if case_ratios[best] >= goal else "FAIL"
            print(f"  {f'{case} {precision} / plain (best: {best})':70s} {case_ratios[best]:8.2f}  >= {goal}  {verdict}")


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
    configurations = {name: spec for name, spec in CONFIGURATIONS.items()
                      if "precision" not in spec or cpu.native_bfloat16}
    workers = {"matmul": _start({"matmul": True})}
    for case_name, case in CASES.items():
        for name, spec in configurations.items():
            workers[(case_name, name)] = _start({**case, **json.loads(json.dumps(spec)), "examples": args.examples})
    measured = _measure(workers, args.rounds)
    _report_cpu(cpu, measured["matmul"]["rate"], args.rounds)
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    ratios = {case_name: _report_case(case_name, {**case, "examples": args.examples},
                                      {name: measured[(case_name, name)] for name in configurations}, cpu,
                                      measured["matmul"]["rate"])
              for case_name, case in CASES.items()}
    _report_targets(ratios)
    print(f"\nload average after the run: {' '.join(f'{load:.1f}' for load in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")


def _report_cpu(cpu, matmul_rates, rounds: int) -> None:
    peak32, peak16 = cpu.peak_flops("float32"), cpu.peak_flops("bfloat16")
    print(f"CPU: {cpu.model}, {cpu.usable_cpus} usable CPUs at {cpu.base_mhz} MHz as reported; flags "
          f"{' '.join(cpu.flags) or 'unknown'}; native bfloat16: {'yes' if cpu.native_bfloat16 else 'no'}")
    if peak32:
        print(f"peak (assumed: {cpu.float32_flops_per_cycle()} float32 FLOP/cycle/core, bfloat16 dot products x2, "
              f"reported clock; boost is higher): float32 {peak32 / 1e9:.0f} GFLOP/s, bfloat16 {peak16 / 1e9:.0f} GFLOP/s")
    print(f"float32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}, default threads, same rounds: {_spread(matmul_rates)} GFLOP/s; "
          f"{rounds} interleaved rounds, one epoch per configuration each")


if __name__ == "__main__":
    main()
