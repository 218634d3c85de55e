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
import time

import numpy as np
import orjson

from kerasdrop.serving.errors import ServingError, invalid, not_found
from kerasdrop.serving.models.backends import find_signature, signature_def_map
from kerasdrop.serving.models.inputs import validate_inputs
from kerasdrop.serving.protocols.json_body import converting, parse_body
from kerasdrop.serving.protocols.parse_lane import ParseLane
from kerasdrop.serving.protocols.tfserving import examples

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
            raise invalid("Invalid base64 in a {\"b64\": ...} value") from None
    if isinstance(value, list):
        return [_decode_values(item) for item in value]
    return value


def _to_json(array: np.ndarray):
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [({"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) and not _is_text(v) else
                 (v.decode() if isinstance(v, bytes) else v)) for v in array.reshape(-1)]
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
        raise invalid("Request body must have exactly one of 'instances' (row format) or 'inputs' (columnar "
                      "format); received both")
    names = list(signature_def.inputs)
    named = body.get("inputs") if isinstance(body.get("inputs"), dict) else \
        (body["instances"][0] if isinstance(body.get("instances"), list) and body["instances"]
         and isinstance(body["instances"][0], dict) else {})
    if len(named) > max(len(names), 1):  # before any per-input work: a request may not name more inputs than exist
        raise invalid(f"Request names {len(named)} inputs; the signature takes {len(names)}: {sorted(names)}")
    if "instances" in body:
        instances = body["instances"]  # a list, or an array from the parse lane
        if not isinstance(instances, (list, np.ndarray)) or len(instances) == 0:
            raise invalid("'instances' must be a non-empty JSON list, one element per input row")
        if all(isinstance(row, dict) for row in instances) and not all(set(row) == {"b64"} for row in instances):
            keys = set(instances[0])
            if any(set(row) != keys for row in instances):
                raise invalid("Every instance must name the same inputs")
            return {key: _decoded(signature_def, key, [row[key] for row in instances]) for key in keys}, "row"
        if len(names) != 1:
            raise invalid(f"The signature has {len(names)} inputs {names}: each instance must be a JSON object "
                          "naming them")
        return {names[0]: _decoded(signature_def, names[0], instances)}, "row"
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not set(inputs) == {"b64"}:
            return {key: _decoded(signature_def, key, value) for key, value in inputs.items()}, "columnar"
        if len(names) != 1:
            raise invalid(f"The signature has {len(names)} inputs {names}: 'inputs' must be a JSON object naming them")
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

    signature_map = signature_def_map(loaded.backend)
    return {
        "model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            signature_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)},
    }


def route(path: str):
    """The model URL's parts (name, version, label, metadata, verb), or None."""
    return _MODEL_PATH.match(path)


def _version(match) -> int | None:
    text = match["version"]
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]+", text) or not 0 < int(text) < 2**63:
        raise invalid(f"Version must be a positive 64-bit integer; received {text!r}")
    return int(text)


def _prepare(manager, loaded, verb: str, request: dict):
    """`(signature, inputs, validated, answer(outputs) -> JSON object)` for a predict, classify or
    regress request: everything but the run, so that the JSON can be let go before it (a predict's
    inputs are arrays validated against the signature already)."""
    signature = request.get("signature_name", "serving_default")
    if not isinstance(signature, str):
        raise invalid("'signature_name' must be a string")
    signature_def = find_signature(loaded.backend, signature, "rest")
    if verb == "predict":
        inputs, layout = predict_inputs(request, signature_def)
        arrays = validate_inputs(signature_def, inputs, manager.admission.max_elements)
        return signature, arrays, True, lambda outputs: predict_response(outputs, layout)
    expected = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}[verb]
    examples.check_method(signature_def, signature, expected)
    rows = request.get("examples")
    if not isinstance(rows, list) or not rows:
        raise invalid("'examples' must be a non-empty JSON list of feature objects")
    context = request.get("context")
    examples.check_context_size(len(rows), examples.json_context_values(context), manager.admission.max_elements)
    serialized = examples.serialized_examples(examples.example_from_json(row, context) for row in rows)
    (input_name,) = list(signature_def.inputs)
    if verb == "classify":
        return signature, {input_name: serialized}, False, lambda outputs: {"results": [
            [[label, score] for label, score in row] for row in examples.classification_results(outputs)]}
    return signature, {input_name: serialized}, False, lambda outputs: {
        "results": examples.regression_results(outputs)}


def handle(manager, method: str, path: str, body: bytes, served: dict | None = None,
           match=None, lane=None) -> tuple[int, dict | str]:
    """Routes one request; returns `(status, JSON object or Prometheus text)`.

    `served`, when given, receives the version that answered (for the metrics); `match` is
    `route(path)` when the caller already has it; `lane`, a ParseLane for large bodies.
    """
    served = {} if served is None else served
    if method == "GET" and path == METRICS_PATH:
        return 200, manager.metrics.render()
    match = match or route(path)
    if not match:
        raise not_found(f"Malformed request: {method} {path}")
    name, label, verb, version = match["name"], match["label"], match["verb"], _version(match)
    if method == "GET" and verb is None:
        if match["metadata"]:
            loaded = manager.resolve(name, version, label)
            served["version"] = loaded.version
            return 200, metadata_response(loaded)
        return 200, {"model_version_status": manager.status(name, version, label)}
    if method != "POST" or verb is None:
        raise ServingError("INVALID_ARGUMENT" if method == "POST" else "NOT_FOUND",
                           f"Malformed request: {method} {path}", http_status=None if method in ("GET", "POST") else 405)
    with converting(body):
        request = parse_body(body, lane)
        if isinstance(body, bytearray):
            body.clear()  # the caller's buffer, no longer needed: a large request is not held twice
        if not isinstance(request, dict):
            raise invalid("Request body must be a JSON object")
        loaded = manager.resolve(name, version, label)
        served["version"] = loaded.version
        signature, inputs, validated, answer = _prepare(manager, loaded, verb, request)
        del request  # its lists: the arrays are all the run needs
    return 200, answer(manager.run(loaded, signature, inputs, "rest", validated=validated))


class TfServingRest:
    """TF Serving's REST API as one router of the HTTP app: `answer(method, path, body)`."""

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

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes, str]:
        """`(status, body bytes, content type)`; never raises for a bad request."""
        started = time.perf_counter()
        match = route(path)
        served = {}
        try:
            status, payload = handle(self.manager, method, path, body, served, match, self.lane)
            code = "OK"
        except ServingError as error:
            status, payload, code = error.status, {"error": error.message}, error.code
        except Exception as error:  # a server bug: still JSON, still serving
            status, payload, code = 500, {"error": f"Internal error: {type(error).__name__}: {error}"}, "INTERNAL"
        if match:
            api = match["verb"] or ("metadata" if match["metadata"] else "status")
            self.manager.record_request(match["name"], served.get("version", ""), f"rest:{api}", code,
                                        time.perf_counter() - started)
        if isinstance(payload, str):
            return status, payload.encode(), "text/plain; version=0.0.4"
        return status, orjson.dumps(payload), "application/json"
