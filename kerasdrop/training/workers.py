"""The independent runs of a study trained side by side in worker processes, one CPU thread each.

A digits run's operations are too small to split across threads (bench/train_throughput.py: lenet5
on 8x8 digits trains about 2x faster on one intra-op thread than on two), so a study runs one
single-threaded process per core instead of one process whose every op is split over all cores.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

# Each worker keeps one TrainingSession (data loaded once, one compiled model per rate), as the
# single-process study does; set by `_start_worker` in the worker process.
_worker_session = None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def study_worker_count(runs_to_train: int, requested: int | None = None) -> int:
    """Worker processes for a study: one per usable CPU, never more than the runs left to train.

    One worker means no worker process at all: the runs are trained in this process.
    """
    wanted = usable_cpus() if requested is None else requested
    return max(1, min(wanted, runs_to_train))


def _start_worker() -> None:
    """Runs first in each worker: one intra-op and one inter-op thread, set before TensorFlow starts."""
    global _worker_session
    os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    from kerasdrop._quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from kerasdrop.training.session import TrainingSession

    _worker_session = TrainingSession()


def _train_job(base, run_dir: str, overrides: list) -> tuple[int, int]:
    """Trains one run in this worker; returns `(process id, models its session has compiled so far)`.

    As `datasize.run_once` for a run not finished: an interrupted one is trained again from the start.
    """
    import shutil

    from kerasdrop.training.loop import train

    if pathlib.Path(run_dir).exists():
        shutil.rmtree(run_dir)  # interrupted: only this study wrote it, and it holds no finished result
    train(base, out=run_dir, verbose=0, overrides=overrides, backup=False, session=_worker_session)
    return os.getpid(), _worker_session.models_compiled


def train_in_workers(base, jobs: Sequence[tuple[pathlib.Path, list, str]], *, workers: int, reporter) -> int:
    """Trains each `(run_dir, overrides, label)` of `base` in `workers` processes; reports each finished run.

    Returns the number of models the workers compiled (one per rate in each worker that trained it).

    The runs are the same as in one process (each seeds itself and starts from a fresh build's
    weights); only the number of threads an op may use differs, so results agree within float
    rounding of reductions, not bit for bit.
    """
    import concurrent.futures
    import multiprocessing

    # spawn, not fork: the parent may already run TensorFlow's thread pools, which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker
    ) as pool:
        pending = {
            pool.submit(_train_job, base, str(run_dir), overrides): label
            for run_dir, overrides, label in jobs
        }
        compiled = {}
        for future in concurrent.futures.as_completed(pending):
            process, models_compiled = future.result()  # a failed run fails the study, with its own error
            compiled[process] = max(compiled.get(process, 0), models_compiled)
            reporter.finished_elsewhere(pending[future])
    return sum(compiled.values())
