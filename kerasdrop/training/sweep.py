"""The dropout study: train one model at several dropout rates (and seeds) and compare the gaps.

Writes `sweep.json` (every run's metrics, mean and sd per rate), `sweep.md` (the table) and
`sweep.png` (validation vs training curves per rate, and the generalisation gap against the rate).
With `train_sizes` it is the data-size study of Srivastava et al. 2014 (figure 10): the same per
size, on stratified training subsets, with a test-error-against-size figure.
Finished runs in the output directory are reused, and an interrupted one continued, so an interrupted
sweep continues where it stopped; but only runs of the same settings (`training/identity.py`): a run
of other settings is refused, or with `overwrite` trained again.
"""

from __future__ import annotations

import dataclasses
import pathlib
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from kerasdrop._validation import check_positive_int, check_rate, invalid_argument
from kerasdrop.training import artifacts
from kerasdrop.training.identity import claim_run_directories
from kerasdrop.training.loop import train
from kerasdrop.training.progress import SweepProgress
from kerasdrop.training.recipe import resolve_recipe
from kerasdrop.training.run import Run, summarise_runs
from kerasdrop.training.session import TrainingSession

COLUMNS = ("train_accuracy", "validation_accuracy", "generalization_gap", "test_accuracy")


@dataclasses.dataclass
class SweepResult:
    directory: pathlib.Path
    summary: dict

    def table(self) -> str:
        if self.summary.get("study") == "datasize":
            from kerasdrop.training import datasize

            return datasize.markdown_table(self.summary)
        return markdown_table(self.summary)


def sweep(
    recipe_or_kwargs: Any = None,
    *,
    rates: Sequence[float],
    seeds: int = 1,
    out: str | pathlib.Path,
    overrides: Sequence[tuple[str, Any]] = (),
    verbose: int | str = 0,
    progress: Callable[[str], None] | None = None,
    train_sizes: Sequence[int | None] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> SweepResult:
    """Trains the recipe once per (rate, seed) and summarises train/validation/test accuracy.

    Args:
        recipe_or_kwargs: as for `train`; its `model.dropout` is replaced by each rate.
        rates: dropout rates, each in [0, 1), applied after every hidden Dense.
        seeds: runs per rate, with seeds `training.seed`, `training.seed + 1`, ...
        out: sweep directory; each run goes to `rate-<rate>/seed-<seed>/`.
        progress: called with one line per run (rate, seed, ETA) and per epoch; None: silent.
        train_sizes: the data-size study: training-subset sizes (None: the whole split); each run
            goes to `size-<n|all>/rate-<rate>/seed-<seed>/`, and every run shares the split of
            `training.seed`, so validation and test are the same whole, fixed splits throughout.
        workers: the data-size study's worker processes, each training runs on one CPU thread
            (None: one per usable CPU; 1: every run in this process, on TensorFlow's default threads).
        overwrite: train again the runs in `out` whose settings differ from these (default: refuse,
            naming the first differing key); runs of the same settings are reused either way.
    """
    rates = [check_rate(rate, "rates") for rate in rates]
    if not rates or len(set(rates)) != len(rates):
        raise invalid_argument("rates", "one or more distinct rates", rates)
    seeds = check_positive_int(seeds, "seeds")
    base = resolve_recipe(recipe_or_kwargs, overrides)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if train_sizes is not None:
        from kerasdrop.training.datasize import datasize_study

        return SweepResult(
            out,
            datasize_study(
                base,
                rates=rates,
                seeds=seeds,
                out=out,
                train_sizes=train_sizes,
                verbose=verbose,
                progress=progress,
                workers=workers,
                overwrite=overwrite,
            ),
        )

    jobs = [
        (
            rate,
            seed,
            out / f"rate-{rate:g}" / f"seed-{seed}",
            [("model.dropout", rate), ("training.seed", seed)],
        )
        for rate in rates
        for seed in range(base.training.seed, base.training.seed + seeds)
    ]
    claim_run_directories(
        [(run_dir, resolve_recipe(base, overrides)) for _, _, run_dir, overrides in jobs], overwrite=overwrite
    )

    results = []
    reporter = SweepProgress(progress, len(rates) * seeds)
    session = TrainingSession()  # one compiled model per rate, reused by its seeds
    for rate in rates:
        runs = []
        for _, seed, run_dir, overrides in [job for job in jobs if job[0] == rate]:
            runs.append(
                _finished_run(
                    base,
                    run_dir,
                    overrides,
                    f"rate {rate:g}, seed {seed}",
                    reporter=reporter,
                    session=session,
                    verbose=verbose,
                )
            )
        results.append(_summarise_rate(rate, runs))

    summary = {
        "model": base.model.name,
        "dataset": base.data.dataset,
        "epochs": base.training.epochs,
        "seeds": seeds,
        "rates": results,
    }
    artifacts.write_json(out / "sweep.json", summary)
    (out / "sweep.md").write_text(markdown_table(summary) + "\n")
    plot_sweep(summary, out / "sweep.png")
    return SweepResult(out, summary)


def _finished_run(base, run_dir: pathlib.Path, overrides, label: str, *, reporter, session, verbose) -> Run:
    """The sweep's run in `run_dir` (of these settings, `claim_run_directories` checked): loaded if
    finished, continued if interrupted, else trained."""
    if (run_dir / "metrics.json").is_file():
        reporter.reused(label)
        return Run.load(run_dir)
    callbacks = reporter.start(label, base.training.epochs)
    if run_dir.exists():
        # An interrupted run of this sweep: continue it rather than refuse.
        run = train(out=run_dir, resume=True, verbose=verbose, callbacks=callbacks)
    else:
        run = train(
            base, out=run_dir, verbose=verbose, callbacks=callbacks, session=session, overrides=overrides
        )
    reporter.finish()
    return run


def _summarise_rate(rate: float, runs: list[Run]) -> dict:
    entry = {**summarise_runs(rate, runs, COLUMNS), "curves": {}}
    # Per-epoch curves averaged over seeds (runs of one sweep share the epoch count).
    for metric in ("accuracy", "val_accuracy", "loss", "val_loss"):
        length = min(len(run.history) for run in runs)
        entry["curves"][metric] = [
            statistics.fmean(run.history[i][metric] for run in runs) for i in range(length)
        ]
    return entry


def markdown_table(summary: dict) -> str:
    seeds = summary["seeds"]
    header = (
        "| dropout | train acc | validation acc | gap (train − val) | test acc |\n|---:|---:|---:|---:|---:|"
    )
    rows = []
    for entry in summary["rates"]:
        cells = [f"{entry['rate']:g}"]
        for column in COLUMNS:
            mean, sd = entry["mean"][column], entry["sd"][column]
            cells.append(f"{mean:.3f} ± {sd:.3f}" if seeds > 1 else f"{mean:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    caption = (
        f"{summary['model']} on {summary['dataset']}, {summary['epochs']} epochs, "
        f"mean ± sd over {seeds} seed{'s' if seeds > 1 else ''}; train accuracy measured with dropout off"
    )
    return "\n".join([caption, "", header, *rows])


def plot_sweep(summary: dict, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    figure = sweep_figure(summary)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def sweep_figure(summary: dict):
    """Accuracy curves per rate; then one quantity per panel against the rate: the gap, the test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, gaps, tests) = plt.subplots(1, 3, figsize=(16, 4.5))
    colours = plt.cm.viridis([i / max(len(summary["rates"]) - 1, 1) for i in range(len(summary["rates"]))])
    for colour, entry in zip(colours, summary["rates"]):
        epochs = range(1, len(entry["curves"]["accuracy"]) + 1)
        curves.plot(
            epochs,
            entry["curves"]["accuracy"],
            color=colour,
            linestyle="--",
            label=f"rate {entry['rate']:g} train (dropout on)",
        )
        curves.plot(
            epochs, entry["curves"]["val_accuracy"], color=colour, label=f"rate {entry['rate']:g} validation"
        )
    curves.set_xlabel("epoch")
    curves.set_ylabel("accuracy")
    curves.set_title("accuracy per epoch (mean over seeds)")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)

    _against_rate(
        gaps,
        summary,
        "generalization_gap",
        "generalisation gap",
        "gap: train acc (dropout off) − validation acc",
        colour="tab:blue",
    )
    gaps.axhline(0, color="grey", linewidth=0.8)
    _against_rate(tests, summary, "test_accuracy", "test accuracy", "test accuracy", colour="tab:green")
    figure.suptitle(
        f"{summary['model']} on {summary['dataset']}: dropout sweep ({summary['seeds']} seeds, "
        f"{summary['epochs']} epochs)"
    )
    figure.tight_layout()
    return figure


def _against_rate(axis, summary: dict, column: str, ylabel: str, title: str, colour: str) -> None:
    """Mean ± sd of `column` per rate, with y limits that hold every error bar whole."""
    rates = [entry["rate"] for entry in summary["rates"]]
    means = [entry["mean"][column] for entry in summary["rates"]]
    sds = [entry["sd"][column] for entry in summary["rates"]]
    axis.errorbar(rates, means, yerr=sds, marker="o", capsize=4, color=colour)
    low = min(mean - sd for mean, sd in zip(means, sds))
    high = max(mean + sd for mean, sd in zip(means, sds))
    margin = max((high - low) * 0.1, 1e-3)
    axis.set_ylim(min(low, 0.0) - margin if column == "generalization_gap" else low - margin, high + margin)
    axis.set_xlabel("dropout rate after each hidden Dense")
    axis.set_ylabel(ylabel)
    axis.set_title(title + (" (mean ± sd over seeds)" if summary["seeds"] > 1 else ""), fontsize=10)
    axis.grid(alpha=0.3)
