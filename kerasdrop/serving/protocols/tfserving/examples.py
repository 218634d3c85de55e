"""tf.Example handling for Classify and Regress (REST JSON examples and gRPC Input protos)."""

from __future__ import annotations

import base64

import numpy as np

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.models.admission import too_many_elements


def example_from_json(features: dict, context: dict | None = None):
    """`{"x": 2.0, "tags": ["a"], "img": {"b64": "..."}}` -> tf.train.Example, as api_rest.md encodes it."""
    import tensorflow as tf

    if not isinstance(features, dict):
        raise invalid(f"Each example must be a JSON object of features; received {type(features).__name__}")
    example = tf.train.Example()
    for name, value in {**(context or {}), **features}.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        if all(isinstance(v, bool) for v in values) or all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            feature.int64_list.value.extend(int(v) for v in values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        elif all(isinstance(v, str) for v in values):
            feature.bytes_list.value.extend(v.encode() for v in values)
        elif all(isinstance(v, dict) and set(v) == {"b64"} for v in values):
            feature.bytes_list.value.extend(base64.b64decode(v["b64"]) for v in values)
        else:
            raise invalid(
                f'Feature {name!r} must be numbers, strings or {{"b64": ...}} values of one kind; '
                f"received {value!r}"
            )
    return example


def check_context_size(examples: int, context_values: int, max_elements: int) -> None:
    """A context is merged into every example (as TF Serving does), so the examples to serialize grow
    as examples x context: a small body (a large context, many empty examples) would otherwise claim
    gigabytes (100 examples with a 1 MB string in the context serialized to 100 MB). The merged size,
    in 4-byte elements (strings by their bytes), counts against --max-elements before any merge."""
    if examples * context_values > max_elements:
        raise too_many_elements("context (merged into each example)", examples * context_values, max_elements)


def _elements(value) -> int:
    """A JSON feature value's size in 4-byte elements (a float32's): a string counts by its bytes."""
    if isinstance(value, str):
        return 1 + len(value) // 4
    if isinstance(value, dict):  # {"b64": ...}
        return 1 + len(str(value.get("b64", ""))) * 3 // 16
    return 1


def json_context_values(context) -> int:
    if not isinstance(context, dict):
        return 0
    return sum(
        sum(map(_elements, value)) if isinstance(value, list) else _elements(value)
        for value in context.values()
    )


def proto_context_values(context) -> int:
    return 1 + context.ByteSize() // 4  # its serialized bytes, in 4-byte elements


def serialized_examples(examples) -> np.ndarray:
    return np.array([example.SerializeToString() for example in examples], dtype=object)


def check_method(signature_def, signature_name: str, expected: str) -> None:
    if signature_def.method_name != expected:
        raise invalid(
            f"Expected {expected.rsplit('/', 1)[-1]} signature method_name to be {expected}. Was: "
            f"{signature_def.method_name or '(none)'} (signature {signature_name!r}); this model has no "
            f"{expected.rsplit('/', 1)[-1]} signature under that name"
        )


def classification_results(outputs: dict) -> list[list[tuple[str, float]]]:
    """Per example, `[(class label, score), ...]` from `classes` and `scores` outputs."""
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is None and classes is None:
        raise invalid("Classification signature has neither a 'scores' nor a 'classes' output")
    rows = len(scores if scores is not None else classes)
    results = []
    for row in range(rows):
        row_scores = np.asarray(scores[row]).reshape(-1) if scores is not None else None
        row_classes = np.asarray(classes[row]).reshape(-1) if classes is not None else None
        width = len(row_scores) if row_scores is not None else len(row_classes)
        labels = (
            [(c.decode() if isinstance(c, bytes) else str(c)) for c in row_classes]
            if row_classes is not None
            else [""] * width
        )
        values = [float(v) for v in row_scores] if row_scores is not None else [0.0] * width
        results.append(list(zip(labels, values)))
    return results


def regression_results(outputs: dict) -> list[float]:
    if "outputs" not in outputs:
        raise invalid("Regression signature has no 'outputs' output")
    return [float(v) for v in np.asarray(outputs["outputs"]).reshape(-1)]
