"""Calibration metrics (Guo et al. 2017): NLL, Brier score, ECE over 15 equal-width bins, temperature scaling.

Pure NumPy on `(probabilities [n, classes], labels [n])`, so they are checked against hand-computed
values; `plot_reliability` draws the reliability diagrams.
"""

from __future__ import annotations

import pathlib

from kerasdrop._validation import invalid_argument

ECE_BINS = 15  # Guo et al. 2017 report ECE with M = 15 bins
_EPSILON = 1e-12  # keeps log(0) finite when a model is certain and wrong


def _checked(probabilities, labels):
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or labels.shape != (probabilities.shape[0],) or probabilities.shape[0] == 0:
        raise invalid_argument(
            "probabilities",
            "an array [n, classes] with n >= 1 and labels of shape [n]",
            f"probabilities {probabilities.shape}, labels {labels.shape}",
        )
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise invalid_argument(
            "labels", f"class indices in [0, {probabilities.shape[1]})", labels.tolist()[:10]
        )
    return probabilities, labels.astype(np.int64)


def negative_log_likelihood(probabilities, labels) -> float:
    """Mean of −log p(true class)."""
    import numpy as np

    probabilities, labels = _checked(probabilities, labels)
    true = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(true, _EPSILON))))


def brier_score(probabilities, labels) -> float:
    """Mean over examples of the squared distance to the one-hot label, summed over classes (Brier 1950)."""
    import numpy as np

    probabilities, labels = _checked(probabilities, labels)
    one_hot = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))


def reliability_bins(probabilities, labels, bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin `(lower, upper]` of top-class confidence: count, accuracy, mean confidence."""
    import numpy as np

    probabilities, labels = _checked(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin m holds confidences in ((m-1)/M, m/M]; ceil puts a confidence on a boundary in the lower bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for m in range(bins):
        members = index == m
        count = int(members.sum())
        rows.append(
            {
                "lower": m / bins,
                "upper": (m + 1) / bins,
                "count": count,
                "accuracy": float(correct[members].mean()) if count else None,
                "confidence": float(confidence[members].mean()) if count else None,
            }
        )
    return rows


def expected_calibration_error(probabilities, labels, bins: int = ECE_BINS) -> float:
    """ECE = Σ_m |B_m|/n · |accuracy(B_m) − confidence(B_m)| over equal-width confidence bins."""
    rows = reliability_bins(probabilities, labels, bins)
    total = sum(row["count"] for row in rows)
    return float(
        sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows if row["count"])
    )


def accuracy(probabilities, labels) -> float:
    probabilities, labels = _checked(probabilities, labels)
    return float((probabilities.argmax(axis=1) == labels).mean())


def calibration_metrics(probabilities, labels) -> dict:
    return {
        "accuracy": accuracy(probabilities, labels),
        "nll": negative_log_likelihood(probabilities, labels),
        "brier": brier_score(probabilities, labels),
        "ece": expected_calibration_error(probabilities, labels),
    }


def softmax(logits):
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def temperature_scaled(probabilities, temperature: float):
    """softmax(log p / T): the model's logits up to a per-row constant, which softmax ignores."""
    import numpy as np

    logits = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), _EPSILON))
    return softmax(logits / temperature)


def fit_temperature(probabilities, labels) -> float:
    """The temperature T > 0 minimising NLL of `temperature_scaled(probabilities, T)` (fit on validation)."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    probabilities, labels = _checked(probabilities, labels)
    # Searched over log T so the bounds are symmetric: T in [e^-4, e^4] covers any sane model.
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(temperature_scaled(probabilities, np.exp(log_t)), labels),
        bounds=(-4.0, 4.0),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(result.x))


def plot_reliability(
    per_method: dict[str, list[dict]], metrics: dict[str, dict], path: pathlib.Path, title: str
) -> None:
    """One reliability diagram per method: accuracy per confidence bin against the diagonal, ECE in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(per_method), figsize=(4.2 * len(per_method), 4.2), squeeze=False)
    for axis, (method, rows) in zip(axes[0], per_method.items()):
        filled = [row for row in rows if row["count"]]
        width = rows[0]["upper"] - rows[0]["lower"]
        axis.bar(
            [row["lower"] for row in filled],
            [row["accuracy"] for row in filled],
            width=width,
            align="edge",
            edgecolor="black",
            color="tab:blue",
            label="accuracy in bin",
        )
        axis.bar(
            [row["lower"] for row in filled],
            [abs(row["confidence"] - row["accuracy"]) for row in filled],
            bottom=[min(row["accuracy"], row["confidence"]) for row in filled],
            width=width,
            align="edge",
            edgecolor="tab:red",
            color="tab:red",
            alpha=0.3,
            label="gap to mean confidence",
        )
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("confidence (top-class probability)")
        axis.set_ylabel("accuracy")
        scores = metrics[method]
        axis.set_title(f"{method}\nECE {scores['ece']:.4f}  NLL {scores['nll']:.4f}", fontsize=10)
        axis.legend(loc="upper left", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
