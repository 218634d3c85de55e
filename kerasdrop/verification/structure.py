"""Check 1 (Keras): every stochastic or batch-dependent layer, and its training mode where it is called.

Every nested layer is walked: sub-models, wrappers (TimeDistributed, Bidirectional), RNN cells,
layers inside custom layers. A layer's training mode under `model(x)` (how `model.export` traces it)
is its own pinned flag, else the one its caller passes down, else its `call` default (True for
augmentation layers). A layer is stochastic when it owns a random SeedGenerator; with every rate 0
it is the identity whatever its mode. The mode judged is the one Keras runs (`effective_training`):
a frozen BatchNormalization (`trainable=False`) uses its moving statistics even under training=True.
"""

from __future__ import annotations

import dataclasses
import inspect
import time

from kerasdrop.verification.report import CheckRun, Report

CHECK = "structure"
STOCHASTIC_ACTION = (
    "call the layer without `training=True`; if you want stochastic inference, export with "
    "`--mc-samples N`, which adds an `mc_dropout` signature and keeps `serving_default` deterministic"
)
# Packages whose layers are Keras' own or built only from them (walked into, not flagged as custom).
KERAS_LIBRARIES = ("keras.", "keras_hub.", "keras_nlp.", "keras_cv.")
# Attributes that scale a stochastic layer's effect; all present and 0 means the layer is the identity.
_RATE_ATTRIBUTES = ("rate", "stddev", "dropout", "recurrent_dropout")


@dataclasses.dataclass(frozen=True)
class LayerCall:
    path: str  # outer/inner/... layer names
    layer: object
    pinned: bool | None  # the training flag its call site passes explicitly (functional graphs only)
    training: bool | None  # its training mode when the outer model is called without `training`


def _owns_seed_generator(layer) -> bool:
    import keras

    return any(isinstance(value, keras.random.SeedGenerator) for value in vars(layer).values())


def _call_default_training(layer):
    try:
        parameter = inspect.signature(layer.call).parameters.get("training")
    except (TypeError, ValueError):
        return None
    return (
        parameter.default
        if parameter is not None and parameter.default is not inspect.Parameter.empty
        else None
    )


def is_identity(layer) -> bool:
    """A stochastic layer whose rates are all 0 (e.g. `Dropout(0)`) changes nothing, in any mode."""
    rates = [
        getattr(layer, name)
        for name in _RATE_ATTRIBUTES
        if isinstance(getattr(layer, name, None), (int, float))
    ]
    return bool(rates) and all(rate == 0 for rate in rates)


def layer_kind(layer) -> str | None:
    """`"random"`, `"augmentation"`, `"batch_norm"`, `"custom"` or None for a deterministic layer."""
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        return "batch_norm"
    # Keras' own dropout layers skip their SeedGenerator when the rate is 0; still dropout layers.
    dropout_classes = (
        keras.layers.Dropout,
        keras.layers.GaussianDropout,
        keras.layers.GaussianNoise,
        keras.layers.AlphaDropout,
    )
    if _owns_seed_generator(layer) or isinstance(layer, dropout_classes):
        # Augmentation layers (preprocessing layers, or any whose call defaults to training=True)
        # are on unless the caller says otherwise; dropout-like layers are off unless told.
        preprocessing = "preprocessing" in type(layer).__module__
        return "augmentation" if preprocessing or _call_default_training(layer) is True else "random"
    module = type(layer).__module__
    # keras-hub's (formerly keras-nlp's/keras-cv's) layers are built from Keras layers, which are walked
    # and judged on their own; the layer itself draws nothing (it owns no SeedGenerator, checked above).
    if isinstance(layer, keras.Model) or module.startswith(KERAS_LIBRARIES):
        return None
    return "custom"


def effective_training(layer, training: bool | None) -> bool | None:
    """The mode Keras actually runs `layer` in when its call resolves to `training`.

    Keras 3's BatchNormalization normalises with batch statistics only when `training and
    self.trainable` (the fine-tuning recipe: freeze the backbone, its BatchNorm stays in inference
    mode whatever the call says); Dropout-like layers ignore `trainable`.
    """
    import keras

    if training is True and isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable:
        return False
    return training


def _own_pins(model, layer) -> list:
    # Only this model's own calls: a layer shared with another model (an inference twin, the
    # mc_dropout clone) also lists the other model's calls among its inbound nodes. Keras' Function
    # keys the nodes it owns as "<id(layer)>_ib-<index in layer._inbound_nodes>".
    own_nodes = getattr(model, "_nodes", None)
    nodes = [
        node
        for index, node in enumerate(getattr(layer, "_inbound_nodes", []))
        if node.arguments is not None and (own_nodes is None or f"{id(layer)}_ib-{index}" in own_nodes)
    ]
    return [node.arguments.kwargs.get("training") for node in nodes] or [None]


def iter_layer_calls(model, prefix: str = "", inherited: bool | None = None):
    """Yields a `LayerCall` for every call of every layer, into every nested layer."""
    for layer in getattr(model, "layers", []):
        for pin in _own_pins(model, layer):
            # A functional model called with an explicit `training` passes it to every layer call,
            # overriding their pinned flags (keras Functional.call); otherwise the pins hold.
            yield from _visit(
                layer, f"{prefix}{layer.name}", pin, inherited if inherited is not None else pin
            )


def _visit(layer, path: str, pinned, inherited):
    import keras

    training = inherited if inherited is not None else _call_default_training(layer)
    yield LayerCall(path, layer, pinned, training)
    if isinstance(layer, keras.Model) and any(getattr(sub, "_inbound_nodes", None) for sub in layer.layers):
        yield from iter_layer_calls(layer, prefix=f"{path}/", inherited=training)
        return
    # Wrappers, RNNs and custom layers call their sub-layers themselves, passing `training` on
    # (Keras' call context carries it where they do not).
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        yield from _visit(sub, f"{path}/{sub.name}", None, training)


def check_structure(model, report: Report, *, for_export: bool = False) -> list[dict]:
    """Adds findings; returns the augmentation layers `kerasdrop export` neutralises (`for_export`)."""
    started = time.perf_counter()
    counts = {"random": 0, "augmentation": 0, "batch_norm": 0}
    neutralised = []
    for call in iter_layer_calls(model):
        kind = layer_kind(call.layer)
        if kind in counts:
            counts[kind] += 1
        if kind == "augmentation" and call.training is not False:
            neutralised.extend(_augmentation(call, report, for_export))
        elif kind in ("random", "batch_norm"):
            _stochastic(call, kind, report)
        elif kind == "custom":
            report.add(
                CHECK,
                "warning",
                call.path,
                f"custom layer {type(call.layer).__name__}: its call cannot be "
                "inspected for random ops or a pinned training flag; the numerical checks decide",
                "make sure its call() passes `training` through to any Dropout or BatchNormalization",
            )
    report.checks.append(
        CheckRun(
            CHECK,
            model.name,
            time.perf_counter() - started,
            f"{counts['random']} random, {counts['augmentation']} augmentation, "
            f"{counts['batch_norm']} batch-norm layer calls",
        )
    )
    return neutralised


def _how(call: LayerCall) -> str:
    if call.pinned is True:
        return "is called with training=True"
    return "runs in training mode because an enclosing call passes training=True"


def _stochastic(call: LayerCall, kind: str, report: Report) -> None:
    name = type(call.layer).__name__
    if (
        kind == "random"
        and not getattr(call.layer, "_call_has_training_arg", True)
        and not is_identity(call.layer)
    ):
        report.add(
            CHECK,
            "error",
            call.path,
            f"{name} draws random numbers on every call: its call() takes no "
            "`training` argument, so nothing turns it off at inference",
            "give call() a `training` argument and draw random numbers only when it is True",
        )
        return
    if call.training is not True:
        mode = (
            "follows the caller's training flag" if call.training is None else "is called with training=False"
        )
        what = "moving statistics" if kind == "batch_norm" else "identity"
        report.add(CHECK, "info", call.path, f"{name} {mode}: {what} at inference")
    elif kind == "random" and is_identity(call.layer):
        report.add(
            CHECK, "info", call.path, f"{name} {_how(call)} but every rate is 0: the identity, harmless"
        )
    elif kind == "batch_norm" and effective_training(call.layer, True) is False:
        why = "it is called with" if call.pinned is True else "an enclosing call passes"
        report.add(
            CHECK,
            "info",
            call.path,
            f"BatchNormalization is frozen (trainable=False), so Keras runs it in "
            f"inference mode (moving statistics) although {why} training=True: harmless",
        )
    elif kind == "batch_norm":
        report.add(
            CHECK,
            "error",
            call.path,
            f"BatchNormalization {_how(call)}: it uses the batch's statistics, so "
            "a prediction depends on the other rows of the batch",
            "call BatchNormalization without training=True so it uses its moving statistics",
        )
    else:
        report.add(
            CHECK,
            "error",
            call.path,
            f"{name} {_how(call)}, so it is active at inference: predictions are "
            "random (or use a fixed mask once exported)",
            STOCHASTIC_ACTION,
        )


def _augmentation(call: LayerCall, report: Report, for_export: bool) -> list[dict]:
    name = type(call.layer).__name__
    # Keras records an augmentation layer's default as if its call site passed training=True.
    why = (
        "it defaults to training=True"
        if _call_default_training(call.layer) is True
        else "its call passes training=True"
    )
    if for_export:
        # kerasdrop export traces with training=False, which Keras 3 propagates over every flag in a
        # functional graph; a plain `model.export` passes nothing and keeps it active.
        report.add(
            CHECK,
            "warning",
            call.path,
            f"{name} augments whenever the model is called without "
            f"training=False ({why}); this export traced training=False and so neutralised it, where a "
            "plain `model.export` would not",
            "move augmentation into the input pipeline",
        )
        return [{"layer": call.path, "class": name, "reason": why}]
    report.add(
        CHECK,
        "error",
        call.path,
        f"{name} augments at inference ({why}): `model(x)` and `model.export` give random predictions",
        "move augmentation into the input pipeline, or remove the layer "
        "before exporting (`kerasdrop export` traces training=False and neutralises it)",
    )
    return []
