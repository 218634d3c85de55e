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
import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from kerasdrop.serving import examples
from kerasdrop.serving.errors import ServingError, invalid, not_found

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>predict|classify|regress))?/?$"
)
METRICS_PATH = "/monitoring/prometheus/metrics"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def _reject_constant(token: str):
    raise invalid(f"JSON value {token} is not allowed: inputs must be finite numbers")


def parse_json(body: bytes):
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid(f"JSON Parse error: {error}") from None


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


def predict_inputs(body: dict, signature_def) -> tuple[dict, str]:
    """`(inputs, "row" | "columnar")` from a predict request body."""
    if "instances" in body and "inputs" in body:
        raise invalid("Request body must have exactly one of 'instances' (row format) or 'inputs' (columnar "
                      "format); received both")
    names = list(signature_def.inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("'instances' must be a non-empty JSON list, one element per input row")
        if all(isinstance(row, dict) for row in instances) and not all(set(row) == {"b64"} for row in instances):
            keys = set(instances[0])
            if any(set(row) != keys for row in instances):
                raise invalid("Every instance must name the same inputs")
            return {key: _decode_values([row[key] for row in instances]) for key in keys}, "row"
        if len(names) != 1:
            raise invalid(f"The signature has {len(names)} inputs {names}: each instance must be a JSON object "
                          "naming them")
        return {names[0]: _decode_values(instances)}, "row"
    if "inputs" in body:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not set(inputs) == {"b64"}:
            return {key: _decode_values(value) for key, value in inputs.items()}, "columnar"
        if len(names) != 1:
            raise invalid(f"The signature has {len(names)} inputs {names}: 'inputs' must be a JSON object naming them")
        return {names[0]: _decode_values(inputs)}, "columnar"
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
    from tensorflow_serving.apis import get_model_metadata_pb2

    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in loaded.backend.signature_defs.items():
        signature_map.signature_def[name].CopyFrom(signature)
    return {
        "model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            signature_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)},
    }


def route(path: str):
    """The model URL's parts (name, version, label, metadata, verb), or None."""
    return _MODEL_PATH.match(path.split("?", 1)[0])


def handle(manager, method: str, path: str, body: bytes, served: dict | None = None,
           match=None) -> tuple[int, dict | str]:
    """Routes one request; returns `(status, JSON object or Prometheus text)`.

    `served`, when given, receives the version that answered (for the metrics); `match` is
    `route(path)` when the caller already has it.
    """
    served = {} if served is None else served
    if method == "GET" and path == METRICS_PATH:
        return 200, manager.metrics.render()
    match = match or route(path)
    if not match:
        raise not_found(f"Malformed request: {method} {path}")
    name, label, verb = match["name"], match["label"], match["verb"]
    version = None
    if match["version"] is not None:
        if not match["version"].isdigit():
            raise invalid(f"Version must be a positive integer; received {match['version']!r}")
        version = int(match["version"])
    if method == "GET" and verb is None:
        if match["metadata"]:
            loaded = manager.resolve(name, version, label)
            served["version"] = loaded.version
            return 200, metadata_response(loaded)
        return 200, {"model_version_status": manager.status(name, version, label)}
    if method != "POST" or verb is None:
        raise ServingError("INVALID_ARGUMENT" if method == "POST" else "NOT_FOUND",
                           f"Malformed request: {method} {path}")
    request = parse_json(body)
    if not isinstance(request, dict):
        raise invalid("Request body must be a JSON object")
    loaded = manager.resolve(name, version, label)
    served["version"] = loaded.version
    signature = request.get("signature_name", "serving_default")
    if not isinstance(signature, str):
        raise invalid("'signature_name' must be a string")
    signature_def = loaded.backend.signature_defs.get(signature)
    if signature_def is None:
        raise not_found(f"Serving signature name: \"{signature}\" not found in signature def")
    if verb == "predict":
        inputs, layout = predict_inputs(request, signature_def)
        return 200, predict_response(manager.run(loaded, signature, inputs), layout)
    expected = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}[verb]
    examples.check_method(signature_def, signature, expected)
    rows = request.get("examples")
    if not isinstance(rows, list) or not rows:
        raise invalid("'examples' must be a non-empty JSON list of feature objects")
    context = request.get("context")
    serialized = examples.serialized_examples(examples.example_from_json(row, context) for row in rows)
    (input_name,) = list(signature_def.inputs)
    outputs = manager.run(loaded, signature, {input_name: serialized})
    if verb == "classify":
        return 200, {"results": [[[label, score] for label, score in row]
                                 for row in examples.classification_results(outputs)]}
    return 200, {"results": examples.regression_results(outputs)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "kerasdrop-serve"
    # Headers and body leave in one buffered write (flushed after each request), and Nagle is off:
    # separate small writes met the client's delayed ACK and cost 40 ms a request (measured).
    wbufsize = -1

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _respond(self, status: int, payload) -> None:
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; version=0.0.4"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        manager = self.server.manager
        match = route(self.path)
        served = {}
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                raise ServingError("INVALID_ARGUMENT", "Content-Length must be a non-negative integer; received "
                                                       f"{self.headers.get('Content-Length')!r}")
            if length > self.server.max_body_bytes:
                self.close_connection = True
                raise ServingError("RESOURCE_EXHAUSTED", f"Request body of {length} bytes exceeds the limit of "
                                                         f"{self.server.max_body_bytes} bytes")
            body = self.rfile.read(length) if length else b""
            status, payload = handle(manager, method, self.path, body, served, match)
            code = "OK"
        except ServingError as error:
            status, payload, code = error.status, {"error": error.message}, error.code
        except Exception as error:  # a server bug: still JSON, still serving
            status, payload, code = 500, {"error": f"Internal error: {type(error).__name__}: {error}"}, "INTERNAL"
        self._respond(status, payload)
        if match:
            api = match["verb"] or ("metadata" if match["metadata"] else "status")
            manager.metrics.record_request(match["name"], served.get("version", match["version"] or ""),
                                           f"rest:{api}", code, time.perf_counter() - started)

    def do_GET(self):  # noqa: N802 - the stdlib's naming
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, manager, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        super().__init__(address, _Handler)
        self.manager = manager
        self.max_body_bytes = max_body_bytes
