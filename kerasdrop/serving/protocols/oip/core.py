"""The Open Inference Protocol without a transport: health, metadata and infer on numpy tensors.

REST (`rest.py`) and gRPC (`grpc_service.py`) decode their messages into `InferRequest`, call
`infer`, and encode the `InferResponse`; every check and error lives here once. A model's tensors
are its `serving_default` signature's (another one with the request parameter `signature_name`).
`call` is the request being answered (protocols/recorded.py): its model manager, and where the
version that answered is noted for the metrics.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasdrop.serving.errors import ServingError, invalid
from kerasdrop.serving.models.admission import too_many_elements
from kerasdrop.serving.models.backends import find_signature
from kerasdrop.serving.protocols.oip import datatypes
from kerasdrop.serving.protocols.recorded import parse_version

SERVER_NAME = "kerasdrop"
EXTENSIONS = ["binary_tensor_data"]  # Triton's binary tensor extension over REST (tritonclient's default)
PLATFORMS = {
    "tf": "tensorflow_savedmodel",
    "onnx": "onnx_onnxv1",
    "onnx-int8": "onnx_onnxv1",  # the spec's names
    "openvino": "openvino_ir",
}
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass
class Tensor:
    """A request input (`data`: an array, or `decode(element_count) -> flat array`, called only after
    the header passed its checks), a requested output (name, parameters) or a response output."""

    name: str
    datatype: str
    shape: list[int]
    data: object = None
    parameters: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class InferRequest:
    model_name: str
    model_version: str = ""
    id: str = ""
    parameters: dict = dataclasses.field(default_factory=dict)
    inputs: list[Tensor] = dataclasses.field(default_factory=list)
    outputs: list[Tensor] | None = None  # requested outputs (name, parameters); None: all of them


@dataclasses.dataclass
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: dict = dataclasses.field(default_factory=dict)


def server_metadata() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        server_version = version("kerasdrop")
    except PackageNotFoundError:  # running from a source tree that was not installed
        server_version = "unknown"
    return {"name": SERVER_NAME, "version": server_version, "extensions": list(EXTENSIONS)}


def resolve(call, name: str, version: str | None):
    """The serving version a request names. A model the repository offers but with no version ready
    (loading, failed to load, or failed its golden requests) is UNAVAILABLE (503), as Triton answers,
    rather than NOT_FOUND."""
    try:
        return call.resolve(name, parse_version(version))
    except ServingError as error:
        manager = call.manager
        if error.code == "NOT_FOUND" and manager.offers(name) and not manager.model_ready(name):
            raise ServingError(
                "UNAVAILABLE",
                f"Model {name!r} is in the repository but no version of it is ready "
                "(loading, or it failed to load or to answer its golden requests: see the server "
                "log)",
            ) from None
        raise


def model_ready(call, name: str, version: str | None) -> bool:
    return call.manager.model_ready(name, parse_version(version))


def _signature_name(parameters: dict) -> str:
    name = parameters.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise invalid(f"Parameter 'signature_name' must be a string; received {name!r}")
    return name


def _tensor_metadata(tensors) -> list[dict]:
    return [
        {"name": key, "datatype": datatypes.from_signature(info.dtype), "shape": datatypes.shape_of(info)}
        for key, info in sorted(tensors.items())
    ]


def model_metadata(call, name: str, version: str | None) -> dict:
    loaded = resolve(call, name, version)
    signature_def = find_signature(loaded.backend, DEFAULT_SIGNATURE, "rest")
    return {
        "name": loaded.name,
        "versions": [str(v) for v in call.manager.loaded_versions().get(name, [])],
        "platform": PLATFORMS.get(getattr(loaded.backend, "name", ""), "tensorflow_savedmodel"),
        "inputs": _tensor_metadata(signature_def.inputs),
        "outputs": _tensor_metadata(signature_def.outputs),
    }


def check_input_header(tensor: Tensor, signature_def, max_elements: int) -> int:
    """The element count of a request input, after checking its name, datatype and shape header
    (before any array is built from its data)."""
    if tensor.name not in signature_def.inputs:
        raise invalid(
            f"Unexpected input {tensor.name!r}; the model's inputs are {sorted(signature_def.inputs)}"
        )
    expected = datatypes.from_signature(signature_def.inputs[tensor.name].dtype)
    datatypes.numpy_dtype(tensor.datatype)  # an unknown datatype names the known ones
    if tensor.datatype != expected:
        raise invalid(f"Input {tensor.name!r} expects datatype {expected}; received {tensor.datatype}")
    shape = tensor.shape
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise invalid(
            f"Input {tensor.name!r}: 'shape' must be a list of non-negative integers; received {shape!r}"
        )
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if count > max_elements:
        raise too_many_elements(tensor.name, count, max_elements)
    return count


def _requested_outputs(request: InferRequest, outputs: dict) -> list[Tensor]:
    if request.outputs is None:
        return [Tensor(name, "", []) for name in sorted(outputs)]
    if len(request.outputs) > len(outputs):
        raise invalid(
            f"{len(request.outputs)} outputs requested; the model has {len(outputs)}: {sorted(outputs)}"
        )
    unknown = [o.name for o in request.outputs if o.name not in outputs]
    if unknown:
        raise invalid(f"Unknown output {unknown[0]!r} requested; the model's outputs are {sorted(outputs)}")
    return request.outputs


def _decoded(tensor: Tensor, count: int) -> np.ndarray:
    flat = np.asarray(tensor.data(count) if callable(tensor.data) else tensor.data)
    if flat.size != count:
        raise invalid(
            f"Input {tensor.name!r} has shape {tensor.shape} ({count} elements) but carries "
            f"{flat.size} values"
        )
    return flat.reshape(tensor.shape)


def _inputs(manager, request: InferRequest, signature_def) -> dict[str, np.ndarray]:
    if len(request.inputs) > len(signature_def.inputs):  # before any per-input work
        raise invalid(
            f"Request has {len(request.inputs)} inputs; the model takes {len(signature_def.inputs)}: "
            f"{sorted(signature_def.inputs)}"
        )
    seen = set()
    for tensor in request.inputs:
        if tensor.name in seen:
            raise invalid(f"Input {tensor.name!r} is given more than once")
        seen.add(tensor.name)
    inputs = {}
    for tensor in request.inputs:
        count = check_input_header(tensor, signature_def, manager.admission.max_elements)
        inputs[tensor.name] = _decoded(tensor, count)
    return inputs


def infer(call, request: InferRequest, protocol: str, timeout: float | None = None) -> InferResponse:
    """Checks and decodes a request's inputs, then runs them through the manager: admission,
    batching, deadline and the signature's shape checks are the TF Serving protocol's own."""
    if not isinstance(request.parameters, dict):
        raise invalid("'parameters' must be a JSON object of name: value pairs")
    loaded = resolve(call, request.model_name, request.model_version)
    signature = _signature_name(request.parameters)
    signature_def = find_signature(loaded.backend, signature, protocol)
    inputs = _inputs(call.manager, request, signature_def)
    outputs = call.manager.run(loaded, signature, inputs, protocol, timeout)
    answered = []
    for wanted in _requested_outputs(request, outputs):
        array = np.asarray(outputs[wanted.name])
        answered.append(
            Tensor(
                wanted.name, datatypes.from_numpy(array), list(array.shape), array, dict(wanted.parameters)
            )
        )
    return InferResponse(loaded.name, str(loaded.version), request.id or "", answered)
