"""`kerasdrop.training.cpu`: what the CPU offers, the thread pools a run asks for, and bfloat16 only where native."""

import warnings

import pytest

from kerasdrop.training import cpu
from kerasdrop.training.loop import train

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC
cpu MHz\t\t: 2596.142
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw avx512_bf16 avx512_vnni

processor\t: 1
"""
OLD_INTEL = """vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) CPU
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw
"""


def test_cpuinfo_flags_decide_native_bfloat16_and_the_peak():
    zen4, intel = cpu.cpu_info(ZEN4), cpu.cpu_info(OLD_INTEL)
    assert zen4.flags == ("fma", "avx2", "avx512f", "avx512_bf16") and zen4.native_bfloat16
    assert not intel.native_bfloat16 and intel.family == 6
    # Zen 4 runs AVX-512 on 256-bit units: 32 float32 FLOP/cycle; Intel's AVX-512 has two 512-bit FMA units: 64.
    assert zen4.peak_flops("float32") == pytest.approx(zen4.usable_cpus * 32 * 2596.142e6)
    assert zen4.peak_flops("bfloat16") == pytest.approx(2 * zen4.peak_flops("float32"))
    assert (
        intel.peak_flops("bfloat16")
        == intel.peak_flops("float32")
        == pytest.approx(intel.usable_cpus * 64 * 2e9)
    )
    assert cpu.cpu_info("").peak_flops() is None and cpu.cpu_info("").to_dict()["flags"] == []


def test_mixed_bfloat16_warns_only_where_bfloat16_is_emulated():
    with pytest.warns(UserWarning, match="without native bfloat16"):
        assert cpu.warn_if_bfloat16_is_emulated("mixed_bfloat16", cpu.cpu_info(OLD_INTEL))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cpu.warn_if_bfloat16_is_emulated("mixed_bfloat16", cpu.cpu_info(ZEN4))
        assert not cpu.warn_if_bfloat16_is_emulated("float32", cpu.cpu_info(OLD_INTEL))


def test_cpu_threads_after_tensorflow_started_warns_and_provenance_says_what_ran(tmp_path):
    import tomllib

    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow has run an op: its thread pools are fixed
    running = cpu.training_threads()
    wanted = running["intra_op"] + 1
    with pytest.warns(UserWarning, match=f"^training.cpu_threads = {wanted} is ignored"):
        run = train(
            {"model": "mlp", "dataset": "synthetic", "epochs": 1, "dense_units": [8], "cpu_threads": wanted},
            out=tmp_path / "run",
            verbose=0,
        )
    provenance = tomllib.loads((run.directory / "recipe.toml").read_text())["provenance"]
    assert provenance["cpu"]["tensorflow_threads"] == running
    assert provenance["cpu"]["bfloat16"] == "not used"
    assert provenance["cpu"]["native_bfloat16"] == cpu.cpu_info().native_bfloat16


def test_negative_cpu_threads_is_refused():
    from kerasdrop.training.recipe import resolve_recipe

    with pytest.raises(ValueError, match="^Invalid value received for argument `training.cpu_threads`"):
        resolve_recipe({"model": "mlp", "cpu_threads": -1})


@pytest.mark.slow
def test_mixed_bfloat16_reaches_float32_accuracy_on_digits_within_seed_noise(tmp_path):
    import statistics

    from kerasdrop.training.session import TrainingSession

    session = TrainingSession()  # one compiled model per precision, as a study shares them
    accuracies = {}
    for precision in ("float32", "mixed_bfloat16"):
        accuracies[precision] = [
            train(
                "models/lenet5_digits.toml",
                out=tmp_path / f"{precision}-{seed}",
                verbose=0,
                backup=False,
                session=session,
                overrides=[
                    ("training.epochs", 15),
                    ("training.seed", seed),
                    ("training.precision", precision),
                ],
            ).metrics["test_accuracy"]
            for seed in range(3)
        ]
    means = {precision: statistics.fmean(values) for precision, values in accuracies.items()}
    spread = max(statistics.stdev(values) for values in accuracies.values())
    assert means["float32"] > 0.9, accuracies  # both learnt digits: the comparison means something
    # Within twice the larger seed-to-seed sd (three seeds estimate it loosely), at least half a point.
    assert abs(means["mixed_bfloat16"] - means["float32"]) <= 2 * max(spread, 0.005), accuracies
