"""What a run directory holds besides the models: history, metrics and training curves."""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Sequence

from kerasdrop._files import atomic_write_text

FINGERPRINT_FILE = "fingerprint.json"  # what defines the run's result (training/identity.py)
RUN_FILES = (
    "model.keras",
    "best.keras",
    "recipe.toml",
    FINGERPRINT_FILE,
    "history.json",
    "history.csv",
    "metrics.json",
    "curves.png",
)


def read_history_csv(path: pathlib.Path) -> list[dict]:
    """Rows of Keras' CSVLogger as dicts of floats (epoch as int); [] when the file is absent."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {key: (int(value) if key == "epoch" else float(value)) for key, value in row.items()} for row in rows
    ]


def write_history_csv(path: pathlib.Path, rows: list[dict]) -> None:
    """Writes rows as Keras' CSVLogger does (`epoch`, then the sorted metric names), as one whole file."""
    import io

    keys = sorted({key for row in rows for key in row} - {"epoch"})
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=["epoch", *keys], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def write_json(path: pathlib.Path, data) -> None:
    """Writes JSON atomically (temp file + rename), so a killed run never leaves half a file."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def record_resume(run_dir: pathlib.Path, completed_epochs: int) -> list[int]:
    """Adds a resume after `completed_epochs` to the run's `resumes.json`; returns every resume point so far."""
    path = run_dir / "resumes.json"
    points = json.loads(path.read_text()) if path.is_file() else []
    points.append(completed_epochs)
    write_json(path, points)
    return points


def best_epoch(history: list[dict], monitor: str) -> dict | None:
    scored = [row for row in history if monitor in row and not math.isnan(row[monitor])]
    if not scored:
        return None
    pick = min if "loss" in monitor else max
    return pick(scored, key=lambda row: row[monitor])


def plot_curves(
    history: list[dict],
    path: pathlib.Path,
    title: str,
    *,
    best_epoch: int | None = None,
    resumed_after: Sequence[int] = (),
) -> None:
    """Loss and accuracy, train vs validation, per epoch; the best epoch and any resume points marked."""
    import matplotlib.pyplot as plt

    figure = curves_figure(history, title, best_epoch=best_epoch, resumed_after=resumed_after)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def curves_figure(
    history: list[dict], title: str, *, best_epoch: int | None = None, resumed_after: Sequence[int] = ()
):
    """The figure of `plot_curves`. `best_epoch` (1-based) is the one saved as best.keras."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(
            epochs,
            [row.get(metric, math.nan) for row in history],
            marker="o",
            label=f"train {metric} (dropout on)",
        )
        axis.plot(
            epochs,
            [row.get(f"val_{metric}", math.nan) for row in history],
            marker="o",
            label=f"validation {metric}",
        )
        if best_epoch is not None:
            axis.axvline(
                best_epoch, color="tab:red", linestyle=":", label=f"best epoch {best_epoch} (best.keras)"
            )
        for epoch in resumed_after:
            axis.axvline(epoch + 0.5, color="grey", linestyle="--", label=f"resumed after epoch {epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
