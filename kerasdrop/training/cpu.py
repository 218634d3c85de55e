"""What the CPU that trains offers: cores, vector instructions, native bfloat16, and its peak FLOP/s.

A run records this in its provenance (`recipe.toml`), because its speed, and under mixed_bfloat16
whether bfloat16 was computed natively or emulated, depend on it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

# Instruction-set flags (as /proc/cpuinfo names them) that decide training speed on a CPU.
SPEED_FLAGS = ("fma", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# oneDNN computes bfloat16 natively with AVX512-BF16 (dot products) or AMX (tiles); without them it
# converts to float32 and back, slower than float32 alone.
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    model: str
    vendor: str
    family: int | None
    usable_cpus: int  # this process's affinity mask
    base_mhz: float | None  # /proc/cpuinfo "cpu MHz": the clock the kernel reports (base, not boost)
    flags: tuple[str, ...]  # the SPEED_FLAGS this CPU has

    @property
    def native_bfloat16(self) -> bool:
        return any(flag in self.flags for flag in NATIVE_BFLOAT16_FLAGS)

    def float32_flops_per_cycle(self) -> int:
        """Peak float32 FLOP per cycle per core: FMA units x lanes x 2 (multiply and add).

        Assumed from the flags: AVX-512 on Intel = two 512-bit FMA units (64); AMD through Zen 4
        runs AVX-512 on two 256-bit units (32, as AVX2 + FMA); AVX without FMA 16; otherwise SSE 8.
        """
        if "avx512f" in self.flags and self.vendor == "GenuineIntel":
            return 64
        if "fma" in self.flags and "avx2" in self.flags:
            return 32
        return 8

    def peak_flops(self, precision: str = "float32") -> float | None:
        """Peak FLOP/s of the usable cores at the reported clock; bfloat16 dot products count double.

        None when the kernel reports no clock. Boost clocks above it make the real peak higher.
        """
        if not self.base_mhz:
            return None
        per_cycle = self.float32_flops_per_cycle()
        if precision != "float32" and self.native_bfloat16:
            per_cycle *= 2  # VDPBF16PS: two bfloat16 products per float32 lane per instruction
        return self.usable_cpus * per_cycle * self.base_mhz * 1e6

    def to_dict(self) -> dict:
        described = {
            "model": self.model,
            "usable_cpus": self.usable_cpus,
            "base_mhz": self.base_mhz,
            "flags": list(self.flags),
            "native_bfloat16": self.native_bfloat16,
        }
        return {key: value for key, value in described.items() if value is not None}  # TOML has no null


def cpu_info(cpuinfo_text: str | None = None) -> CpuInfo:
    """The CPU from /proc/cpuinfo (or `cpuinfo_text`); flags empty where it cannot be read."""
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo") as file:
                cpuinfo_text = file.read()
        except OSError:
            cpuinfo_text = ""
    fields: dict[str, str] = {}
    for line in cpuinfo_text.splitlines():
        if not line.strip():
            break  # the first processor's block describes them all
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    family = fields.get("cpu family", "")
    mhz = fields.get("cpu MHz", "")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return CpuInfo(
        model=fields.get("model name", "unknown"),
        vendor=fields.get("vendor_id", "unknown"),
        family=int(family) if family.isdigit() else None,
        usable_cpus=usable,
        base_mhz=float(mhz) if mhz.replace(".", "", 1).isdigit() else None,
        flags=tuple(flag for flag in SPEED_FLAGS if flag in flags),
    )


def training_threads() -> dict:
    """TensorFlow's intra-op and inter-op thread pools as configured (0: TensorFlow's default, all cores)."""
    import tensorflow as tf

    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads()
        or int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads()
        or int(os.environ.get("TF_NUM_INTEROP_THREADS", "0")),
    }


def apply_cpu_threads(threads: int) -> bool:
    """Sets TensorFlow's intra-op and inter-op pools to `threads` (0: leave TensorFlow's default).

    Returns whether the setting is in effect: the pools are fixed once TensorFlow has run an op, so a
    later run in the same process keeps the first one's (and warns; its provenance says which it had).
    """
    import tensorflow as tf

    if threads == 0:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        warnings.warn(
            f"training.cpu_threads = {threads} is ignored: TensorFlow already runs with "
            f"{training_threads()} threads in this process. Train in a new process to use it.",
            stacklevel=2,
        )
        return False
    return True


def warn_if_bfloat16_is_emulated(precision: str, info: CpuInfo | None = None) -> bool:
    """Warns when mixed_bfloat16 is asked for on a CPU without native bfloat16; returns whether it warned."""
    info = info if info is not None else cpu_info()
    if precision == "float32" or info.native_bfloat16 or not info.flags:
        return False
    warnings.warn(
        f"training.precision = {precision} on a CPU without native bfloat16 "
        f"({' or '.join(NATIVE_BFLOAT16_FLAGS)} absent from /proc/cpuinfo on {info.model}): "
        "oneDNN emulates it, which trains slower than float32. Use precision = float32 here.",
        stacklevel=3,
    )
    return True
