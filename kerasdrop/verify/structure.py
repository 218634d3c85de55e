"""Check 1 (Keras): every stochastic or batch-dependent layer, and how the graph calls it.

A call pinned to `training=True` is an error: the layer is active at inference whatever the caller
asks for. Augmentation layers default to `training=True`, so they are active in any export that
traces the model without `training=False` (as `model.export` does).
"""

from __future__ import annotations

import time

from kerasdrop.verify.report import CheckRun, Report

CHECK = "structure"
_AUGMENTATION_NAMES = ("AugMix", "CutMix", "MixUp", "RandAugment", "Solarization")
STOCHASTIC_ACTION = ("call the layer without `training=True`; if you want stochastic inference, export with "
                     "`--mc-samples N`, which adds an `mc_dropout` signature and keeps `serving_default` deterministic")


def layer_kind(layer) -> str | None:
    """`"random"`, `"augmentation"`, `"batch_norm"`, `"custom"` or None for a plain deterministic layer."""
    import keras

    random_classes = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
                      keras.layers.AlphaDropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                      keras.layers.SpatialDropout3D)
    if isinstance(layer, random_classes):
        return "random"
    name = type(layer).__name__
    if name.startswith("Random") or name in _AUGMENTATION_NAMES:
        return "augmentation"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batch_norm"
    module = type(layer).__module__
    if isinstance(layer, keras.Model) or module.startswith("keras."):
        return None
    return "custom"


def iter_layer_calls(model, prefix: str = ""):
    """Yields `(path, layer, training_argument)` for every call of every layer, into nested models.

    `training_argument` is what the functional graph pins (`True`/`False`), or None when the call
    follows the caller's `training`.
    """
    import keras

    # Only this model's own calls: a layer shared with another model (an inference twin, the
    # mc_dropout clone) also lists the other model's calls among its inbound nodes. Keras' Function
    # keys the nodes it owns as "<id(layer)>_ib-<index in layer._inbound_nodes>".
    own_nodes = getattr(model, "_nodes", None)
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        nodes = [node for index, node in enumerate(getattr(layer, "_inbound_nodes", []))
                 if node.arguments is not None and (own_nodes is None or f"{id(layer)}_ib-{index}" in own_nodes)]
        pins = [node.arguments.kwargs.get("training") for node in nodes] or [None]
        for pin in pins:
            yield path, layer, pin
        if isinstance(layer, keras.Model) and hasattr(layer, "layers"):
            yield from iter_layer_calls(layer, prefix=f"{path}/")
        elif layer_kind(layer) == "custom":
            # Sub-layers of a custom layer: listed so their kinds show, calls cannot be inspected.
            for sub in layer._flatten_layers(include_self=False):
                yield f"{path}/{sub.name}", sub, None


def check_structure(model, report: Report) -> None:
    started = time.perf_counter()
    counts = {"random": 0, "augmentation": 0, "batch_norm": 0}
    for path, layer, pin in iter_layer_calls(model):
        kind = layer_kind(layer)
        cls = type(layer).__name__
        if kind in ("random", "augmentation", "batch_norm"):
            counts[kind] += 1
        if kind == "random":
            if pin is True:
                report.add(CHECK, "error", path, f"{cls} is called with training=True, so it is active at "
                           "inference: predictions are random (or use a fixed mask once exported)", STOCHASTIC_ACTION)
            else:
                report.add(CHECK, "info", path, f"{cls} follows the caller's training flag: identity at inference")
        elif kind == "augmentation" and pin is not False:
            # Keras records an augmentation layer's default (training=True) as if pinned, so the
            # two cannot be told apart; both are active wherever the model is called without
            # training=False. An explicit outer training=False (kerasdrop export) turns it off.
            report.add(CHECK, "warning", path, f"{cls} runs with training=True unless the caller passes "
                       "training=False: it augments served requests wherever the model is traced without it, "
                       "as `model.export` does",
                       "kerasdrop export traces with training=False, which turns it off; with other exporters "
                       "move augmentation into the input pipeline")
        elif kind == "batch_norm":
            if pin is True:
                report.add(CHECK, "error", path, "BatchNormalization is called with training=True: it uses the "
                           "batch's statistics, so a prediction depends on the other rows of the batch",
                           "call BatchNormalization without training=True so it uses its moving statistics")
            else:
                report.add(CHECK, "info", path, "BatchNormalization follows the caller's training flag: moving "
                           "statistics at inference")
        elif kind == "custom":
            report.add(CHECK, "warning", path, f"custom layer {cls}: its call cannot be inspected for random "
                       "ops or a pinned training flag; the numerical checks decide",
                       "make sure its call() passes `training` through to any Dropout or BatchNormalization")
    report.checks.append(CheckRun(CHECK, model.name, time.perf_counter() - started,
                                  f"{counts['random']} random, {counts['augmentation']} augmentation, "
                                  f"{counts['batch_norm']} batch-norm layer calls"))
