"""TF Serving's protocol without a transport: a request's model, predict, classify and regress on
decoded inputs, metadata and status, as REST (`rest.py`) and gRPC (`grpc_service.py`) both call them.

Each adapter decodes its message (JSON or protos) into numpy inputs or tf.Examples, calls these and
encodes what they return (KServe's DataPlane: decode -> infer -> encode). `call` is the request
being answered (protocols/recorded.py): its model manager, and where the version that answered is noted.
"""

from __future__ import annotations

from kerasdrop.serving.errors import invalid
from kerasdrop.serving.models.backends import find_signature, signature_def_map
from kerasdrop.serving.protocols.tfserving import examples

DEFAULT_SIGNATURE = "serving_default"
# The method_name a signature needs for each examples API (TF Serving's classifier / regressor checks).
EXAMPLES_METHODS = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}


def resolve(call, name: str, version: int | None, label: str | None):
    """The serving version a request names (its version, its label, or the latest)."""
    if not name:
        raise invalid("model_spec.name is required")
    return call.resolve(name, version, label)


def predict(
    call,
    loaded,
    signature: str,
    inputs: dict,
    protocol: str,
    timeout: float | None = None,
    validated: bool = False,
) -> dict:
    """`{output: array}` of the signature run on `inputs` (within admission, batching and the deadline)."""
    return call.manager.run(loaded, signature, inputs, protocol, timeout, validated=validated)


def signature_def(loaded, signature: str, protocol: str, verb: str = "predict"):
    """The SignatureDef a request names; for classify and regress, checked to be one of that kind."""
    found = find_signature(loaded.backend, signature, protocol)
    if verb != "predict":
        examples.check_method(found, signature, EXAMPLES_METHODS[verb])
    return found


def examples_inputs(signature_def, request_examples) -> dict:
    """`{input: serialized tf.Examples}`: a classify or regress signature's one input."""
    (input_name,) = list(signature_def.inputs)
    return {input_name: examples.serialized_examples(request_examples)}


def classify(call, loaded, signature: str, inputs: dict, protocol: str, timeout: float | None = None) -> list:
    """One `[(label, score), ...]` per example."""
    return examples.classification_results(call.manager.run(loaded, signature, inputs, protocol, timeout))


def regress(call, loaded, signature: str, inputs: dict, protocol: str, timeout: float | None = None) -> list:
    """One float per example."""
    return examples.regression_results(call.manager.run(loaded, signature, inputs, protocol, timeout))


def metadata(loaded):
    """The version's SignatureDefMap (GetModelMetadata's one metadata field, `signature_def`)."""
    return signature_def_map(loaded.backend)


def model_status(call, name: str, version: int | None, label: str | None) -> list[dict]:
    """`[{"version", "state", "status"}]` of the versions a status request names."""
    return call.manager.status(name, version, label)
