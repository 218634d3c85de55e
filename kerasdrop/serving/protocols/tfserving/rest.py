"""TF Serving's REST API (api_rest.md) over the model manager.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    instances (row) or inputs (columnar)
    POST ...:classify / ...:regress                              tf.Example requests
    GET  /monitoring/prometheus/metrics                          Prometheus text
Errors are `{"error": "..."}` with a 4xx for anything the client sent.
"""

from __future__ import annotations

import base64
import re

import numpy as np
import orjson

from kerasdrop.serving.errors import ServingError, invalid, not_found
from kerasdrop.serving.models.inputs import validate_inputs
from kerasdrop.serving.protocols.json_body import converting, parse_body
from kerasdrop.serving.protocols.parse_lane import ParseLane
from kerasdrop.serving.protocols.recorded import (
    JSON,
    NO_HEADERS,
    Call,
    parse_version,
    rest_error,
    run_recorded,
)
from kerasdrop.serving.protocols.tfserving import core, examples

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>predict|classify|regress))?/?$"
)
METRICS_PATH = "/monitoring/prometheus/metrics"


def _decode_values(value):
    """`{"b64": ...}` -> bytes, recursively (binary string inputs)."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError):
            raise invalid('Invalid base64 in a {"b64": ...} value') from None
    if isinstance(value, list):
        return [_decode_values(item) for item in value]
    return value


def _to_json(array: np.ndarray):
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [
            (
                {"b64": base64.b64encode(v).decode()}
                if isinstance(v, bytes) and not _is_text(v)
                else (v.decode() if isinstance(v, bytes) else v)
            )
            for v in array.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def _is_text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


_DT_STRING = 7  # tensorflow.DataType.DT_STRING: the only dtype whose JSON values may be {"b64": ...}


def _decoded(signature_def, key: str, value):
    """`value` with `{"b64": ...}` decoded, for string inputs only: walking every number of a numeric
    input in Python cost more than parsing the JSON (measured)."""
    info = signature_def.inputs.get(key)
    return value if info is not None and info.dtype != _DT_STRING else _decode_values(value)


def predict_inputs(body: dict, signature_def) -> tuple[dict, str]:
    """`(inputs, "row" | "columnar")` from a predict request body."""
    if "instances" in body and "inputs" in body:
        raise invalid(
            "Request body must have exactly one of 'instances' (row format) or 'inputs' (columnar "
            "format); received both"
        )
    names = list(signature_def.inputs)
    named = (
        body.get("inputs")
        if isinstance(body.get("inputs"), dict)
        else (
            body["instances"][0]
            if isinstance(body.get("instances"), list)
            and body["instances"]
            and isinstance(body["instances"][0], dict)
            else {}
        )
    )
    if len(named) > max(
        len(names), 1
    ):  # before any per-input work: a request may not name more inputs than exist
        raise invalid(f"Request names {len(named)} inputs; the signature takes {len(names)}: {sorted(names)}")
    if "instances" in body:
        instances = body["instances"]  # a list, or an array from the parse lane
        if not isinstance(instances, (list, np.ndarray)) or len(instances) == 0:
            raise invalid("'instances' must be a non-empty JSON list, one element per input row")
        if all(isinstance(row, dict) for row in instances) and not all(
            set(row) == {"b64"} for row in instances
        ):
            keys = set(instances[0])
            if any(set(row) != keys for row in instances):
                raise invalid("Every instance must name the same inputs")
            return {key: _decoded(signature_def, key, [row[key] for row in instances]) for key in keys}, "row"
        if len(names) != 1:
            raise invalid(
                f"The signature has {len(names)} inputs {names}: each instance must be a JSON object "
                "naming them"
            )
        return {names[0]: _decoded(signature_def, names[0], instances)}, "row"
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not set(inputs) == {"b64"}:
            return {key: _decoded(signature_def, key, value) for key, value in inputs.items()}, "columnar"
        if len(names) != 1:
            raise invalid(
                f"The signature has {len(names)} inputs {names}: 'inputs' must be a JSON object naming them"
            )
        return {names[0]: _decoded(signature_def, names[0], inputs)}, "columnar"
    raise invalid("Missing 'instances' or 'inputs' in the request body")


def predict_response(outputs: dict[str, np.ndarray], layout: str) -> dict:
    if layout == "columnar":
        if len(outputs) == 1:
            return {"outputs": _to_json(next(iter(outputs.values())))}
        return {"outputs": {key: _to_json(value) for key, value in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": _to_json(next(iter(outputs.values())))}
    columns = {key: _to_json(value) for key, value in outputs.items()}
    rows = {len(value) if isinstance(value, list) else -1 for value in columns.values()}
    if len(rows) != 1 or -1 in rows:
        raise invalid("Outputs do not share a batch dimension; use the columnar ('inputs') format")
    (count,) = rows
    return {"predictions": [{key: value[row] for key, value in columns.items()} for row in range(count)]}


def metadata_response(loaded) -> dict:
    from google.protobuf import json_format

    signature_map = core.metadata(loaded)
    return {
        "model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        },
    }


def route(path: str):
    """The model URL's parts (name, version, label, metadata, verb), or None."""
    return _MODEL_PATH.match(path)


def _decode(manager, loaded, verb: str, request: dict) -> tuple[str, dict, str | None]:
    """`(signature, inputs, predict layout)` of a predict, classify or regress request: everything
    but the run, so that the JSON can be let go before it (a predict's inputs are arrays validated
    against the signature already; a classify's or regress's, serialized tf.Examples)."""
    signature = request.get("signature_name", core.DEFAULT_SIGNATURE)
    if not isinstance(signature, str):
        raise invalid("'signature_name' must be a string")
    signature_def = core.signature_def(loaded, signature, "rest", verb)
    if verb == "predict":
        inputs, layout = predict_inputs(request, signature_def)
        return signature, validate_inputs(signature_def, inputs, manager.admission.max_elements), layout
    rows = request.get("examples")
    if not isinstance(rows, list) or not rows:
        raise invalid("'examples' must be a non-empty JSON list of feature objects")
    context = request.get("context")
    examples.check_context_size(
        len(rows), examples.json_context_values(context), manager.admission.max_elements
    )
    return (
        signature,
        core.examples_inputs(signature_def, (examples.example_from_json(row, context) for row in rows)),
        None,
    )


def _run(call, loaded, verb: str, signature: str, inputs: dict, layout: str | None) -> dict:
    """The JSON answer of a decoded predict, classify or regress request."""
    if verb == "predict":
        return predict_response(core.predict(call, loaded, signature, inputs, "rest", validated=True), layout)
    if verb == "classify":
        return {
            "results": [
                [[label, score] for label, score in row]
                for row in core.classify(call, loaded, signature, inputs, "rest")
            ]
        }
    return {"results": core.regress(call, loaded, signature, inputs, "rest")}


def handle(call, method: str, path: str, body: bytes, match=None, lane=None) -> dict | str:
    """Routes one request; returns its JSON object (or the Prometheus text), or raises a ServingError.

    `call` is the request being answered (protocols/recorded.py); `match` is `route(path)` when the
    caller already has it; `lane`, a ParseLane for large bodies.
    """
    if method == "GET" and path == METRICS_PATH:
        return call.manager.metrics.render()
    match = match or route(path)
    if not match:
        raise not_found(f"Malformed request: {method} {path}")
    name, label, verb, version = match["name"], match["label"], match["verb"], parse_version(match["version"])
    if method == "GET" and verb is None:
        if match["metadata"]:
            return metadata_response(core.resolve(call, name, version, label))
        return {"model_version_status": core.model_status(call, name, version, label)}
    if method != "POST" or verb is None:
        raise ServingError(
            "INVALID_ARGUMENT" if method == "POST" else "NOT_FOUND",
            f"Malformed request: {method} {path}",
            http_status=None if method in ("GET", "POST") else 405,
        )
    with converting(body):
        request = parse_body(body, lane)
        if isinstance(body, bytearray):
            body.clear()  # the caller's buffer, no longer needed: a large request is not held twice
        if not isinstance(request, dict):
            raise invalid("Request body must be a JSON object")
        loaded = core.resolve(call, name, version, label)
        decoded = _decode(call.manager, loaded, verb, request)
        del request  # its lists: the arrays are all the run needs
    return _run(call, loaded, verb, *decoded)


class TfServingRest:
    """TF Serving's REST API as one router of the HTTP app (a `RestRouter`, protocols/registry.py)."""

    def __init__(self, manager):
        self.manager = manager
        self.lane = ParseLane()

    def claims(self, path: str) -> bool:
        return path.startswith("/v1/models/") or path == METRICS_PATH

    def close(self) -> None:
        self.lane.stop()

    def cheap(self, method: str, path: str) -> bool:
        """A predict/classify/regress request to a model that runs a row in well under a millisecond
        (the HTTP app answers it on its event loop; see process/http_app.py)."""
        match = route(path) if method == "POST" else None
        return bool(match and match["verb"]) and self.manager.cheap(match["name"])

    def answer(self, method: str, path: str, body: bytes, headers=()) -> tuple[int, bytes, str, tuple]:
        """`(status, body bytes, content type, extra headers)`; never raises for a bad request."""
        match = route(path)
        api = f"rest:{match['verb'] or ('metadata' if match['metadata'] else 'status')}" if match else ""
        call = Call(self.manager, match["name"] if match else None, api)
        payload, error = run_recorded(call, handle, method, path, body, match, self.lane)
        if error is not None:
            return rest_error(error)
        if isinstance(payload, str):
            return 200, payload.encode(), "text/plain; version=0.0.4", NO_HEADERS
        return 200, orjson.dumps(payload), JSON, NO_HEADERS
