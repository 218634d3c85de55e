"""What `serving_default` publishes: the model's own input and output names, `class_ids` for softmax outputs.

A model whose one output comes from a softmax (a `Softmax` layer, or a layer with `activation="softmax"`)
is a classifier: `<its input> -> probabilities, class_ids` (the argmax), as TF Serving clients expect.
Any other model keeps its own names: inputs by their Input layers (or the keys of a dict input),
outputs by the layers that produce them (or the keys of a dict output); each softmax output among
several also gets `<name>_class_ids`. The test is structural, not numerical: outputs that happen to be
non-negative and sum to 1 on probes (a normalised mixture, a sigmoid pair) are not thereby class scores.
"""

from __future__ import annotations

import dataclasses

PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"
CLASS_IDS_SUFFIX = "_" + CLASS_IDS


@dataclasses.dataclass(frozen=True)
class ServedInput:
    name: str
    dtype: str
    row_shape: tuple  # per-row shape; the batch dimension is left open


@dataclasses.dataclass(frozen=True)
class ServingInterface:
    """`serving_default`'s inputs and outputs, and which outputs are softmax probability vectors."""

    inputs: tuple[ServedInput, ...]
    outputs: tuple[str, ...]  # the model's outputs, in the order it returns them
    softmax_outputs: tuple[str, ...]  # those that get class ids (their argmax)
    classifier: bool  # one softmax output: published as `probabilities` + `class_ids`

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def published_outputs(self) -> list[str]:
        if self.classifier:
            return [PROBABILITIES, CLASS_IDS]
        return [*self.outputs, *(name + CLASS_IDS_SUFFIX for name in self.softmax_outputs)]

    def describe(self) -> str:
        """One line: the names, and why `class_ids` is there or not."""
        names = f"{', '.join(self.input_names)} -> {', '.join(self.published_outputs)}"
        if self.classifier:
            return f"{names} (a softmax classifier: class_ids is the argmax of the probabilities)"
        if self.softmax_outputs:
            return (
                f"{names} (the model's own names; softmax outputs {', '.join(self.softmax_outputs)} also give "
                "their argmax as <name>_class_ids)"
            )
        return f"{names} (the model's own names; no softmax output, so no class_ids)"

    def to_dict(self) -> dict:
        return {
            "inputs": self.input_names,
            "outputs": self.published_outputs,
            "classifier": self.classifier,
            "softmax_outputs": list(self.softmax_outputs),
        }


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def _is_softmax(tensor) -> bool:
    layer = _producer(tensor)
    if layer is None or len(tensor.shape) < 2 or tensor.shape[-1] in (None, 1):
        return False
    return type(layer).__name__ == "Softmax" or layer.get_config().get("activation") == "softmax"


def _named(structure, tensors, layer_names) -> list[tuple[str, object]]:
    """`(name, tensor)` in the order Keras flattens `structure`: dict keys, else the producing layers' names."""
    if isinstance(structure, dict):
        return [(str(key), structure[key]) for key in sorted(structure)]
    return list(zip(layer_names, tensors))


def serving_interface(model) -> ServingInterface:
    """The names `model` is published under; refuses a model that declares no inputs and outputs."""
    from kerasdrop._validation import invalid_argument

    try:
        inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    except (AttributeError, ValueError):
        inputs, outputs = [], []
    if not inputs or not outputs:
        raise invalid_argument(
            "model",
            "a functional or Sequential Keras model (its inputs and outputs declare the "
            "names export publishes)",
            f"{type(model).__name__} {model.name!r} without declared inputs and outputs",
        )
    named_inputs = _named(getattr(model, "_inputs_struct", None), inputs, [_producer(t).name for t in inputs])
    # A Sequential model has no output_names: its outputs are named by the layers that produce them.
    output_names = list(getattr(model, "output_names", None) or [_producer(t).name for t in outputs])
    named_outputs = _named(getattr(model, "_outputs_struct", None), outputs, output_names)
    softmax = tuple(name for name, tensor in named_outputs if _is_softmax(tensor))
    interface = ServingInterface(
        inputs=tuple(
            ServedInput(name, str(tensor.dtype), tuple(tensor.shape[1:])) for name, tensor in named_inputs
        ),
        outputs=tuple(name for name, _ in named_outputs),
        softmax_outputs=softmax,
        classifier=len(named_outputs) == 1 and len(softmax) == 1,
    )
    published = interface.published_outputs
    if len(set(published)) != len(published):
        raise invalid_argument(
            "model", "outputs whose names stay distinct when softmax outputs add <name>_class_ids", published
        )
    return interface


def input_signature(model) -> list:
    """One named TensorSpec per input, batch dimension open: the signature's input keys are these names."""
    import tensorflow as tf

    return [
        tf.TensorSpec([None, *spec.row_shape], spec.dtype, name=spec.name)
        for spec in serving_interface(model).inputs
    ]


def serving_function(model):
    """`(*inputs) -> {published output: tensor}`, the model called in inference mode, explicitly."""
    import keras
    import tensorflow as tf

    interface = serving_interface(model)
    structure = getattr(model, "_inputs_struct", None)

    def serve(*inputs):
        packed = keras.tree.pack_sequence_as(structure, list(inputs)) if structure is not None else inputs[0]
        results = dict(zip(interface.outputs, keras.tree.flatten(model(packed, training=False))))
        if interface.classifier:
            probabilities = results[interface.outputs[0]]
            return {PROBABILITIES: probabilities, CLASS_IDS: tf.argmax(probabilities, axis=-1)}
        return {
            **results,
            **{
                name + CLASS_IDS_SUFFIX: tf.argmax(results[name], axis=-1)
                for name in interface.softmax_outputs
            },
        }

    return serve


def keras_reference(model):
    """The Keras model run eagerly as `serving_default` computes it, on `{input name: array}`, for parity."""
    import numpy as np

    interface = serving_interface(model)
    serve = serving_function(model)

    def run(inputs):
        outputs = serve(*(inputs[name] for name in interface.input_names))
        return {key: np.asarray(value) for key, value in outputs.items()}

    return run
