"""Check 3 (Keras), runtime evidence: does calling the model draw random numbers?

Every Keras random op advances a seed state: a layer's own SeedGenerator, or Keras' global one for
unseeded draws (keras.applications' ConvNeXt stochastic depth). A served call that advances one is
active at inference even when the outputs cannot show it: an untrained network (layer scale 1e-6,
stochastic depth on near-zero residual branches) hides dropped units below float resolution.
"""

from __future__ import annotations

import time

import numpy as np

from kerasdrop.verification import runtimes
from kerasdrop.verification.report import CheckRun, Report
from kerasdrop.verification.structure import STOCHASTIC_ACTION

CHECK = "numerical"


def _rnn_dropout(layer) -> bool:
    # Keras' RNN cells draw their dropout masks on every call, in inference mode too, and use them only
    # in training (the graph scan warns about the same seed write); their effect is judged numerically.
    import keras

    return isinstance(layer, keras.layers.RNN) or hasattr(layer, "get_dropout_mask")


def seed_states(model) -> list[tuple[str, object]]:
    """`(owner, state variable)` of every SeedGenerator a call of `model` could advance."""
    import keras

    states = []
    for layer in model._flatten_layers(include_self=True):
        if _rnn_dropout(layer):
            continue
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                states.append((layer.name, value.state))
    try:  # private to Keras: where unseeded draws take their seeds from
        from keras.src.random.seed_generator import global_seed_generator

        states.append(("Keras' global seed generator (an unseeded random op)", global_seed_generator().state))
    except (ImportError, AttributeError):
        pass
    return states


def check_random_draws(
    model, inputs: dict, report: Report, *, training, location: str, severity: str = "error"
) -> None:
    """One call of `model` on `inputs` with `training` must leave every seed state where it was.

    Every state is restored afterwards, so verifying never changes the model's random stream.
    """
    started = time.perf_counter()
    states = seed_states(model)
    before = [np.array(variable.numpy()) for _, variable in states]
    try:
        runtimes.call_keras(model, inputs, training)
    except Exception:  # the other numerical checks report a model that raises on its probes
        return
    finally:
        after = [np.array(variable.numpy()) for _, variable in states]
        for (_, variable), value in zip(states, before):
            variable.assign(value)
    advanced = [owner for (owner, _), old, new in zip(states, before, after) if not np.array_equal(old, new)]
    if advanced:
        report.add(
            CHECK,
            severity,
            location,
            f"draws random numbers when called (seed state of "
            f"{', '.join(advanced[:4])}{', ...' if len(advanced) > 4 else ''} advanced): a layer is active at "
            "inference, whatever the outputs show (untrained weights can hide it below float resolution)",
            STOCHASTIC_ACTION,
        )
    else:
        report.add(CHECK, "info", location, f"draws no random numbers ({len(states)} seed states unchanged)")
    report.checks.append(CheckRun(CHECK, f"{location} draws", time.perf_counter() - started, "random draws"))
