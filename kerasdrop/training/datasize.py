"""The data-size study (Srivastava et al. 2014, section 7.4 / figure 10): test error against training-set size.

One run per (size, rate, seed) on stratified subsets of the training split, every run validated
and tested on the same whole splits; writes `sweep.json`, `sweep.md` and the figure `sweep.png`.
"""

from __future__ import annotations

import pathlib
import shutil
import time
from collections.abc import Sequence

from kerasdrop._validation import invalid_argument
from kerasdrop.training import artifacts
from kerasdrop.training.loop import train
from kerasdrop.training.run import Run, summarise_runs

COLUMNS = ("test_accuracy", "generalization_gap", "train_accuracy", "validation_accuracy")


def check_train_sizes(train_sizes: Sequence[int | None]) -> list[int | None]:
    """Distinct positive sizes in increasing order, `None` (the whole split) last."""
    sizes = list(train_sizes)
    numbers = [size for size in sizes if size is not None]
    if (
        not sizes
        or len(set(sizes)) != len(sizes)
        or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in numbers)
    ):
        raise invalid_argument(
            "train_sizes", "distinct integers >= 1 and/or 'all', e.g. 50,100,all", train_sizes
        )
    return sorted(numbers) + ([None] if None in sizes else [])


def size_label(size: int | None) -> str:
    return "all" if size is None else str(size)


def datasize_study(
    base,
    *,
    rates: list[float],
    seeds: int,
    out: pathlib.Path,
    train_sizes: Sequence[int | None],
    verbose=0,
    progress=None,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Trains every (size, rate, seed) and summarises.

    With more than one worker (default: one per usable CPU, `training/workers.py`), the runs are
    trained side by side in single-threaded worker processes; with one, in this process. Either
    way each process loads the data once and compiles one model per rate (a `TrainingSession`).
    """
    from kerasdrop.training.identity import claim_run_directories
    from kerasdrop.training.progress import SweepProgress
    from kerasdrop.training.recipe import resolve_recipe
    from kerasdrop.training.session import TrainingSession
    from kerasdrop.training.workers import study_worker_count, train_in_workers

    sizes = check_train_sizes(train_sizes)
    reporter = SweepProgress(progress, len(sizes) * len(rates) * seeds)
    started = time.perf_counter()
    jobs = [
        (
            out / f"size-{size_label(size)}" / f"rate-{rate:g}" / f"seed-{seed}",
            [
                ("model.dropout", rate),
                ("training.seed", seed),
                ("data.train_size", size),
                ("data.split_seed", base.training.seed),
            ],
            f"size {size_label(size)}, rate {rate:g}, seed {seed}",
        )
        for size in sizes
        for rate in rates
        for seed in range(base.training.seed, base.training.seed + seeds)
    ]
    # Every existing run must be of these settings before anything is trained (or removed, with overwrite).
    claim_run_directories(
        [(run_dir, resolve_recipe(base, overrides)) for run_dir, overrides, _ in jobs], overwrite=overwrite
    )
    workers = study_worker_count(
        len([job for job in jobs if not (job[0] / "metrics.json").is_file()]), workers
    )
    if workers > 1:  # each worker trains on one thread, and its runs' recipes say so
        jobs = [
            (run_dir, [*overrides, ("training.cpu_threads", 1)], label) for run_dir, overrides, label in jobs
        ]
    to_train = [job for job in jobs if not (job[0] / "metrics.json").is_file()]
    session = TrainingSession()
    compiled_in_workers = 0
    if workers > 1:
        compiled_in_workers = train_in_workers(base, to_train, workers=workers, reporter=reporter)
        reporter = SweepProgress(None, len(jobs))  # every run is finished now; only loaded below
    runs = iter(
        [
            run_once(
                base,
                run_dir,
                verbose=verbose,
                reporter=reporter,
                session=session,
                label=label,
                overrides=overrides,
            )
            for run_dir, overrides, label in jobs
        ]
    )
    entries = []
    for size in sizes:
        runs_per_rate = [[next(runs) for _ in range(seeds)] for _ in rates]
        entries.append(
            {
                "train_size": size_label(size),
                "num_train": runs_per_rate[0][0].metrics["dataset"]["num_train"],
                "rates": [_summarise_runs(rate, rate_runs) for rate, rate_runs in zip(rates, runs_per_rate)],
            }
        )
    summary = {
        "study": "datasize",
        "model": base.model.name,
        "dense_units": base.model.dense_units,
        "dataset": base.data.dataset,
        "epochs": base.training.epochs,
        "seeds": seeds,
        "rates": rates,
        "sizes": entries,
        "compiled_models": session.models_compiled + compiled_in_workers,
        "worker_processes": workers,
        "fit_seconds": round(sum(rate["fit_seconds"] for entry in entries for rate in entry["rates"]), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    artifacts.write_json(out / "sweep.json", summary)
    (out / "sweep.md").write_text(markdown_table(summary) + "\n")
    plot_datasize(summary, out / "sweep.png")
    return summary


def run_once(base, run_dir: pathlib.Path, *, overrides, verbose, reporter, label: str, session=None) -> Run:
    """The finished run in `run_dir`: loaded if done, else trained (an interrupted one again, from the start).

    Study runs are short, so they skip the per-epoch backup that `--resume` needs and are trained
    again when interrupted (bench/study_backup.py measures what the backup costs).
    """
    if (run_dir / "metrics.json").is_file():
        reporter.reused(label)
        return Run.load(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # interrupted: only this study wrote it, and it holds no finished result
    callbacks = reporter.start(label, base.training.epochs)
    run = train(
        base,
        out=run_dir,
        verbose=verbose,
        overrides=overrides,
        backup=False,
        callbacks=callbacks,
        session=session,
    )
    reporter.finish()
    return run


def _summarise_runs(rate: float, runs: list[Run]) -> dict:
    return {**summarise_runs(rate, runs, COLUMNS), "fit_seconds": sum(run.metrics["seconds"] for run in runs)}


def markdown_table(summary: dict) -> str:
    """One row per training-set size: test accuracy and gap (train − validation) per rate, mean ± sd."""
    rates = summary["rates"]
    header = (
        "| train examples | "
        + " | ".join(f"test acc, dropout {rate:g} | gap, dropout {rate:g}" for rate in rates)
        + " |"
    )
    rows = [header, "|---:|" + "---:|" * (2 * len(rates))]
    for entry in summary["sizes"]:
        cells = [f"{entry['num_train']}" + (" (all)" if entry["train_size"] == "all" else "")]
        for rate_entry in entry["rates"]:
            for column in ("test_accuracy", "generalization_gap"):
                cells.append(f"{rate_entry['mean'][column]:.3f} ± {rate_entry['sd'][column]:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    caption = (
        f"{summary['model']} on {summary['dataset']}: stratified training subsets, whole fixed validation "
        f"and test splits; {summary['epochs']} epochs of as many examples as the whole training split; "
        f"mean ± sd over {summary['seeds']} seeds; gap = train acc (dropout off) − validation acc. "
        f"{summary['wall_seconds']:.0f} s wall time in this invocation ({summary['fit_seconds']:.0f} s in fit)."
    )
    return "\n".join([caption, "", *rows])


def plot_datasize(summary: dict, path: pathlib.Path) -> None:
    """Figure 10's shape: test error (%) against training-set size (log x), one line per dropout rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (error_axis, gap_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    sizes = [entry["num_train"] for entry in summary["sizes"]]
    for index, rate in enumerate(summary["rates"]):
        per_size = [entry["rates"][index] for entry in summary["sizes"]]
        error_axis.errorbar(
            sizes,
            [100 * (1 - e["mean"]["test_accuracy"]) for e in per_size],
            yerr=[100 * e["sd"]["test_accuracy"] for e in per_size],
            marker="o",
            capsize=4,
            label="no dropout" if rate == 0 else f"dropout {rate:g}",
        )
        gap_axis.errorbar(
            sizes,
            [e["mean"]["generalization_gap"] for e in per_size],
            yerr=[e["sd"]["generalization_gap"] for e in per_size],
            marker="o",
            capsize=4,
            label="no dropout" if rate == 0 else f"dropout {rate:g}",
        )
    for axis, label in (
        (error_axis, "test error (%)"),
        (gap_axis, "train acc (dropout off) − validation acc"),
    ):
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.minorticks_off()
        axis.set_xlabel("training examples (log scale)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    error_axis.set_title("test error against data set size")
    gap_axis.set_title("generalisation gap against data set size")
    figure.suptitle(
        f"{summary['model']} on {summary['dataset']}: effect of data set size "
        f"(mean ± sd over {summary['seeds']} seeds)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
