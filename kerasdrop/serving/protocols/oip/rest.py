"""The Open Inference Protocol's REST API (inference_rest.md), a router of the HTTP app beside TF Serving's.

    GET  /v2/health/live | /v2/health/ready                       200, or 400 when not ready (as Triton)
    GET  /v2                                                      server metadata
    GET  /v2/models/{name}[/versions/{v}][/ready]                 model metadata | model ready (200 / 400)
    POST /v2/models/{name}[/versions/{v}]/infer                   JSON tensors, or Triton's binary extension
Binary extension: the header `Inference-Header-Content-Length: N` says the body's first N bytes are
the JSON; inputs with `"parameters": {"binary_data_size": n}` take their bytes from what follows, in
order. Outputs are binary when asked (`binary_data` per output, `binary_data_output` per request).
Errors are `{"error": "..."}`: 400 for a bad request, 404 for an unknown model or version, 503 for a
model in the repository with no version ready.
"""

from __future__ import annotations

import re

import numpy as np
import orjson

from kerasdrop.serving.errors import ServingError, invalid, not_found
from kerasdrop.serving.models.inputs import nested_size
from kerasdrop.serving.protocols.json_body import converting, parse_json
from kerasdrop.serving.protocols.oip import core, datatypes
from kerasdrop.serving.protocols.recorded import JSON, NO_HEADERS, Call, rest_answer

_PATH = re.compile(
    r"^/v2(?:/health/(?P<health>live|ready)|/models/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+))?(?:/(?P<action>ready|infer))?)?/?$"
)
HEADER_LENGTH = "inference-header-content-length"


def _flatten(values):
    for value in values:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def _json_values(name: str, datatype: str, data, count: int) -> np.ndarray:
    """A JSON input's values, flattened, as the datatype's array (nested or flat lists both allowed)."""
    if not isinstance(data, list):
        raise invalid(f"Input {name!r}: 'data' must be a JSON list of values in row-major order")
    if nested_size(data) > count:
        raise invalid(f"Input {name!r} has shape of {count} elements but carries more values")
    if datatype == "BYTES":
        flat = list(_flatten(data))
        if not all(isinstance(value, str) for value in flat):
            raise invalid(f"Input {name!r}: BYTES values must be JSON strings (or use the binary extension)")
        return np.array([value.encode() for value in flat], dtype=object)
    dtype = datatypes.numpy_dtype(datatype)
    try:
        received = np.asarray(data)
        kinds = {"b": "b", "u": "iub", "i": "iub", "f": "iubf"}[dtype.kind]
        if received.size and received.dtype.kind not in kinds:
            raise ValueError(f"received {received.dtype.name} values")
        return received.astype(dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError) as error:
        raise invalid(
            f"Input {name!r} expects {datatype} values; received values that cannot be converted "
            f"({str(error).splitlines()[0]})"
        ) from None


class _Binary:
    """The bytes after the JSON header, handed out to inputs in order."""

    def __init__(self, data):
        self.data, self.offset = memoryview(data), 0

    def take(self, name: str, size) -> memoryview:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid(
                f"Input {name!r}: 'binary_data_size' must be a non-negative integer; received {size!r}"
            )
        if self.offset + size > len(self.data):
            raise invalid(
                f"Input {name!r} declares {size} bytes of binary data but only "
                f"{len(self.data) - self.offset} remain after the JSON header"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def _input(item, binary: _Binary) -> core.Tensor:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("name"), str)
        or not isinstance(item.get("datatype"), str)
    ):
        raise invalid("Each input must be an object with string 'name' and 'datatype', 'shape' and 'data'")
    name, datatype, parameters = item["name"], item["datatype"], item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid(f"Input {name!r}: 'parameters' must be a JSON object")
    if "binary_data_size" in parameters:
        if "data" in item:
            raise invalid(f"Input {name!r} has both 'data' and binary data ('binary_data_size'); send one")
        chunk = binary.take(name, parameters["binary_data_size"])
        decode = lambda count: datatypes.from_buffer(name, datatype, chunk, [count])  # noqa: E731
    elif "data" in item:
        decode = lambda count: _json_values(name, datatype, item["data"], count)  # noqa: E731
    else:
        raise invalid(f"Input {name!r} has no 'data' (nor 'binary_data_size' with the binary extension)")
    return core.Tensor(name, datatype, item.get("shape"), decode, parameters)


def _requested(item) -> core.Tensor:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise invalid("Each requested output must be an object with a string 'name'")
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid(f"Output {item['name']!r}: 'parameters' must be a JSON object")
    if parameters.get("class_count"):
        raise invalid(
            f"Output {item['name']!r}: 'class_count' (Triton's classification extension) is not "
            "supported; request the output itself"
        )
    return core.Tensor(item["name"], "", [], None, parameters)


def parse_infer(name: str, version: str | None, body, headers: dict) -> core.InferRequest:
    header, binary = body, _Binary(b"")
    if HEADER_LENGTH in headers:
        text = headers[HEADER_LENGTH]
        if not text.isdigit() or int(text) > len(body):
            raise invalid(
                f"Inference-Header-Content-Length must be a byte count within the body's {len(body)} "
                f"bytes; received {text!r}"
            )
        header, binary = bytes(body[: int(text)]), _Binary(body)
        binary.offset = int(text)
    request = parse_json(header)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise invalid("The request must be a JSON object with an 'inputs' list")
    inputs = [_input(item, binary) for item in request["inputs"]]
    if binary.offset != len(binary.data):
        raise invalid(
            f"{len(binary.data) - binary.offset} bytes of binary data follow the inputs' "
            "'binary_data_size' total"
        )
    outputs = request.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise invalid("'outputs' must be a list of requested outputs")
    request_id = request.get("id", "")
    if not isinstance(request_id, str):
        raise invalid(f"'id' must be a string; received {request_id!r}")
    return core.InferRequest(
        name,
        version or "",
        request_id,
        request.get("parameters", {}),
        inputs,
        None if outputs is None else [_requested(item) for item in outputs],
    )


def _json_data(tensor: core.Tensor) -> list:
    flat = tensor.data.reshape(-1)
    if tensor.datatype != "BYTES":
        return flat.tolist()
    try:
        return [value.decode() if isinstance(value, bytes) else str(value) for value in flat]
    except UnicodeDecodeError:
        raise invalid(
            f"Output {tensor.name!r} holds bytes that are not UTF-8 text; request it with "
            '"parameters": {"binary_data": true}'
        ) from None


def encode_infer(response: core.InferResponse, binary_default) -> tuple[bytes, str, list | tuple]:
    """`(body, content type, extra headers)`: JSON, or JSON then the binary outputs."""
    if not isinstance(binary_default, bool):
        raise invalid(f"Parameter 'binary_data_output' must be a boolean; received {binary_default!r}")
    outputs, blobs = [], []
    for tensor in response.outputs:
        entry = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if tensor.parameters.get("binary_data", binary_default):
            blob = datatypes.to_buffer(tensor.data)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(tensor)
        outputs.append(entry)
    document = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id:
        document["id"] = response.id
    header = orjson.dumps(document)
    if not blobs:
        return header, JSON, NO_HEADERS
    return (
        header + b"".join(blobs),
        "application/octet-stream",
        [(b"Inference-Header-Content-Length", str(len(header)).encode())],
    )


def _health(manager, which: str) -> tuple[int, dict]:
    if which == "live":
        return 200, {"live": True}
    ready, reason = manager.readiness()
    return (200, {"ready": True}) if ready else (400, {"ready": False, "reason": reason})


def _model(call, method: str, match, body, headers: dict) -> tuple[int, bytes, str, tuple]:
    name, version, action = match["name"], match["version"], match["action"]
    if method != ("POST" if action == "infer" else "GET"):
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Method {method} is not allowed on {match.string}; expected "
            f"{'POST' if action == 'infer' else 'GET'}",
            http_status=405,
        )
    if action == "ready":
        ready = core.model_ready(call, name, version)
        return (200 if ready else 400), orjson.dumps({"name": name, "ready": ready}), JSON, NO_HEADERS
    if action is None:
        return 200, orjson.dumps(core.model_metadata(call, name, version)), JSON, NO_HEADERS
    core.resolve(call, name, version)  # an unknown model is a 404 whatever the body holds
    with converting(body):  # one large JSON body at a time becomes arrays (json_body.py)
        request = parse_infer(name, version, body, headers)
    binary_default = (
        request.parameters.get("binary_data_output", False) if isinstance(request.parameters, dict) else False
    )
    response = core.infer(call, request, "rest")
    return (200, *encode_infer(response, binary_default))


def _route(call, method: str, path: str, match, body, raw_headers) -> tuple[int, bytes, str, tuple]:
    if not match:
        raise not_found(f"Not an Open Inference Protocol path: {method} {path}")
    if match["name"] is not None:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in raw_headers}
        return _model(call, method, match, body, headers)
    if method != "GET":
        raise ServingError(
            "INVALID_ARGUMENT", f"Method {method} is not allowed on {path}; expected GET", http_status=405
        )
    if match["health"]:
        status, document = _health(call.manager, match["health"])
        return status, orjson.dumps(document), JSON, NO_HEADERS
    return 200, orjson.dumps(core.server_metadata()), JSON, NO_HEADERS


class OipRest:
    """The Open Inference Protocol's REST API as one router of the HTTP app (a `RestRouter`,
    protocols/registry.py)."""

    def __init__(self, manager):
        self.manager = manager

    def claims(self, path: str) -> bool:
        return path == "/v2" or path.startswith("/v2/")

    def close(self) -> None:
        pass  # nothing started

    def cheap(self, method: str, path: str) -> bool:
        """An infer request to a model that runs a row in well under a millisecond (answered on the
        HTTP app's event loop; see process/http_app.py)."""
        match = _PATH.match(path) if method == "POST" else None
        return bool(match and match["action"] == "infer") and self.manager.cheap(match["name"])

    def answer(self, method: str, path: str, body, headers=()) -> tuple[int, bytes, str, tuple]:
        """`(status, body bytes, content type, extra headers)`; never raises for a bad request: every
        error is a status with `{"error": ...}`."""
        match = _PATH.match(path)
        model = match["name"] if match else None
        call = Call(self.manager, model, f"rest:v2_{match['action'] or 'metadata'}" if model else "")
        return rest_answer(call, _route, method, path, match, body, headers)
