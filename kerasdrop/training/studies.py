"""Studies of a finished run's inference: calibration (Guo et al. 2017) and MC averaging (Srivastava et al.
2014, fig. 11).

`calibrate(run_dir)` writes `calibration.json`, `reliability.png`, `mc_averaging.json` and
`mc_averaging.png` into the run directory and adds the calibration figures to its `metrics.json`.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import time
from collections.abc import Sequence

from kerasdrop._validation import check_positive_int, invalid_argument
from kerasdrop.training import artifacts, calibration
from kerasdrop.training.build import recipe_datasets
from kerasdrop.training.run import Run

MC_AVERAGING_KS = (1, 2, 5, 10, 20, 50, 100)  # the k of Srivastava et al. 2014, figure 11


def _arrays(pipeline):
    import numpy as np

    batches = list(pipeline.as_numpy_iterator())
    return np.concatenate([images for images, _ in batches]), np.concatenate(
        [labels for _, labels in batches]
    )


def _deterministic(model, images):
    """Probabilities with every layer in inference mode: what `serving_default` returns."""
    import numpy as np

    return np.concatenate(
        [
            np.asarray(model(images[start : start + 1024], training=False))
            for start in range(0, len(images), 1024)
        ]
    )


def mc_averaging_study(
    model, images, labels, *, ks: Sequence[int] = MC_AVERAGING_KS, repeats: int = 10, seed: int = 0
) -> dict:
    """Test error of the mean of k stochastic passes against weight scaling, mean ± sd over `repeats`.

    Each repeat draws max(ks) passes of the `mc_dropout` signature's stochastic model and scores the
    average of the first k, so the k of one repeat are nested, as when sampling more masks.
    """
    import keras
    import numpy as np

    from kerasdrop.zoo.monte_carlo import monte_carlo_model, monte_carlo_passes

    ks = sorted({check_positive_int(k, "ks") for k in ks})
    repeats = check_positive_int(repeats, "repeats", minimum=2)
    stochastic = monte_carlo_model(model)
    errors = {k: [] for k in ks}
    for repeat in range(repeats):
        keras.utils.set_random_seed(seed + repeat)
        passes = np.asarray(monte_carlo_passes(stochastic, images, max(ks)))
        running = np.cumsum(passes, axis=0)
        for k in ks:
            errors[k].append(float((running[k - 1].argmax(axis=1) != labels).mean()))
    deterministic_error = float((_deterministic(model, images).argmax(axis=1) != labels).mean())
    return {
        "weight_scaling_error": deterministic_error,
        "repeats": repeats,
        "examples": int(len(labels)),
        "ks": [
            {
                "k": k,
                "error_mean": statistics.fmean(errors[k]),
                "error_sd": statistics.stdev(errors[k]),
                "errors": errors[k],
            }
            for k in ks
        ],
    }


def calibration_study(model, validation, test, *, mc_samples: int = 50, seed: int = 0) -> tuple[dict, dict]:
    """Calibration on the test split of (a) the deterministic model, (b) MC dropout with `mc_samples`
    passes (the exported `mc_dropout` function), (c) temperature scaling fitted on validation.

    Returns the metrics per method and the reliability bins per method.
    """
    import keras
    import numpy as np

    from kerasdrop.zoo.monte_carlo import monte_carlo_function

    (validation_images, validation_labels), (test_images, test_labels) = validation, test
    temperature = calibration.fit_temperature(_deterministic(model, validation_images), validation_labels)
    keras.utils.set_random_seed(seed)
    deterministic = _deterministic(model, test_images)
    probabilities = {
        "deterministic": deterministic,
        "mc_dropout": np.asarray(monte_carlo_function(model, mc_samples)(test_images)["mean"]),
        "temperature_scaled": calibration.temperature_scaled(deterministic, temperature),
    }
    metrics = {method: calibration.calibration_metrics(p, test_labels) for method, p in probabilities.items()}
    bins = {method: calibration.reliability_bins(p, test_labels) for method, p in probabilities.items()}
    return {"temperature": temperature, "mc_samples": mc_samples, "methods": metrics}, bins


def calibrate(
    run_dir: str | os.PathLike,
    *,
    mc_samples: int = 50,
    ks: Sequence[int] = MC_AVERAGING_KS,
    repeats: int = 10,
    seed: int = 0,
) -> dict:
    """Runs both studies on a finished run's `model.keras` and its own test split; writes the results.

    Args:
        run_dir: a directory written by `kerasdrop train` (holds metrics.json and model.keras).
        mc_samples: stochastic passes for MC dropout's calibration (Gal & Ghahramani 2016 use 50+).
        ks: numbers of passes for the MC-averaging curve.
        repeats: independent draws per k, for the sd.
        seed: seeds the dropout masks, so the figures reproduce.

    Returns:
        `{"calibration": ..., "mc_averaging": ...}` as written to the run directory.
    """
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "model.keras").is_file():
        raise invalid_argument(
            "run_dir",
            "a finished run directory of `kerasdrop train` (metrics.json and model.keras)",
            str(run_dir),
        )
    mc_samples = check_positive_int(mc_samples, "mc_samples", minimum=2)
    import keras

    started = time.perf_counter()
    run = Run.load(run_dir)
    # Dropout layers draw their seed generators' seeds when the model is loaded: seed first, so the
    # masks (and every MC figure) are the same in every invocation.
    keras.utils.set_random_seed(seed)
    model = run.model
    data = recipe_datasets(run.recipe)
    validation, test = _arrays(data.validation), _arrays(data.test)
    summary, bins = calibration_study(model, validation, test, mc_samples=mc_samples, seed=seed)
    summary["reliability_bins"] = bins
    summary["split"] = "test"
    averaging = mc_averaging_study(model, *test, ks=ks, repeats=repeats, seed=seed)
    seconds = round(time.perf_counter() - started, 1)
    summary["seconds"] = averaging["seconds"] = seconds
    title = f"{run.recipe.model.name} on {run.recipe.data.dataset}, dropout {run.recipe.model.dropout}"
    artifacts.write_json(run_dir / "calibration.json", summary)
    artifacts.write_json(run_dir / "mc_averaging.json", averaging)
    labels = {
        "deterministic": "deterministic (weight scaling)",
        "mc_dropout": f"MC dropout, k={mc_samples}",
        "temperature_scaled": f"temperature scaled, T={summary['temperature']:.3f}",
    }
    calibration.plot_reliability(
        {labels[m]: rows for m, rows in bins.items()},
        {labels[m]: scores for m, scores in summary["methods"].items()},
        run_dir / "reliability.png",
        f"{title}: reliability (test split)",
    )
    plot_mc_averaging(averaging, run_dir / "mc_averaging.png", title)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["calibration"] = {
        "temperature": summary["temperature"],
        "mc_samples": mc_samples,
        "split": "test",
        "methods": summary["methods"],
    }
    artifacts.write_json(run_dir / "metrics.json", metrics)
    return {"calibration": summary, "mc_averaging": averaging}


def plot_mc_averaging(averaging: dict, path: pathlib.Path, title: str) -> None:
    """Figure 11's shape: test error against k (log x), MC averaging ± sd against the weight-scaling line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [row["k"] for row in averaging["ks"]]
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    axis.errorbar(
        ks,
        [100 * row["error_mean"] for row in averaging["ks"]],
        yerr=[100 * row["error_sd"] for row in averaging["ks"]],
        marker="o",
        capsize=4,
        label=f"MC model averaging (mean ± sd, {averaging['repeats']} repeats)",
    )
    axis.axhline(
        100 * averaging["weight_scaling_error"],
        color="tab:red",
        linestyle="--",
        label="weight scaling (dropout off)",
    )
    axis.set_xscale("log")
    axis.set_xticks(ks, [str(k) for k in ks])
    axis.minorticks_off()
    axis.set_xlabel("number of samples used for MC averaging (k)")
    axis.set_ylabel("test error (%)")
    axis.set_title(f"{title}\n{averaging['examples']} test examples", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
