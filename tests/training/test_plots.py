"""curves.png marks the best epoch and resume points; sweep.png shows one quantity per panel, every bar whole."""

from kerasdrop.training.artifacts import curves_figure
from kerasdrop.training.sweep import sweep_figure

HISTORY = [
    {
        "epoch": e,
        "loss": 1.0 / (e + 1),
        "val_loss": 1.2 / (e + 1),
        "accuracy": 0.5 + e / 10,
        "val_accuracy": 0.5 + e / 12,
    }
    for e in range(5)
]


def _vertical_lines(axis):
    return {
        line.get_label(): line.get_xdata()[0]
        for line in axis.get_lines()
        if line.get_label().startswith(("best", "resumed"))
    }


def test_curves_mark_the_best_epoch_and_each_resume_point():
    figure = curves_figure(HISTORY, "t", best_epoch=4, resumed_after=[2])
    for axis in figure.axes:
        assert _vertical_lines(axis) == {"best epoch 4 (best.keras)": 4, "resumed after epoch 2": 2.5}
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert "best epoch 4 (best.keras)" in legend and "resumed after epoch 2" in legend


SUMMARY = {
    "model": "mlp",
    "dataset": "digits",
    "epochs": 3,
    "seeds": 3,
    "rates": [
        {
            "rate": rate,
            "mean": {"generalization_gap": gap, "test_accuracy": test},
            "sd": {"generalization_gap": 0.02, "test_accuracy": sd},
            "curves": {"accuracy": [0.5, 0.7, 0.9], "val_accuracy": [0.5, 0.6, 0.8]},
        }
        for rate, gap, test, sd in [(0.0, 0.05, 0.97, 0.04), (0.5, 0.01, 0.99, 0.03)]
    ],
}


def test_sweep_figure_has_one_quantity_per_panel_and_every_error_bar_inside_its_axes():
    figure = sweep_figure(SUMMARY)
    assert len(figure.axes) == 3, "curves, gap, test accuracy: no twin y-axis"
    for axis, column in zip(figure.axes[1:], ("generalization_gap", "test_accuracy")):
        (bars,) = axis.containers
        low, high = axis.get_ylim()
        for entry in SUMMARY["rates"]:
            mean, sd = entry["mean"][column], entry["sd"][column]
            assert low < mean - sd and mean + sd < high, f"{column} bar at rate {entry['rate']} is clipped"
