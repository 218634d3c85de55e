"""A small client for TF Serving's REST and gRPC APIs (kerasdrop serve or real TF Serving)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np

from kerasdrop.errors import InvalidArgumentError, KerasdropError


class ServingClientError(KerasdropError, RuntimeError):
    """The server answered with an error; `status` is the HTTP status or gRPC code name."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ServingClient:
    """`ServingClient("http://127.0.0.1:8501")` or `ServingClient("grpc://127.0.0.1:8500")`; over TLS
    `https://` or `grpcs://`, trusting `ca_cert` (a PEM file; default: the system's CAs) and, for
    mutual TLS, presenting `client_cert` with its `client_key`."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        *,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.protocol = "grpc" if self.url.startswith(("grpc://", "grpcs://")) else "rest"
        if self.protocol == "rest" and not self.url.startswith(("http://", "https://")):
            raise InvalidArgumentError(
                f"Invalid value received for argument `url`. Expected http://HOST:PORT, "
                f"https://HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT. Received: url={url!r}"
            )
        self.tls = self.url.startswith(("https://", "grpcs://"))
        if (ca_cert or client_cert or client_key) and not self.tls:
            raise InvalidArgumentError(
                f"Invalid value received for argument `url`. Expected https:// or grpcs:// "
                f"with a CA or client certificate. Received: url={url!r}"
            )
        if (client_cert is None) != (client_key is None):
            raise InvalidArgumentError(
                "Invalid value received for argument `client_cert`. Expected it together with "
                f"`client_key`. Received: client_cert={client_cert!r}, client_key={client_key!r}"
            )
        self._certificates = {"ca_cert": ca_cert, "client_cert": client_cert, "client_key": client_key}
        self._ssl_context = self._make_ssl_context() if self.protocol == "rest" and self.tls else None
        self._stub = None
        self._channel = None

    def _make_ssl_context(self):
        import ssl

        context = ssl.create_default_context(cafile=self._certificates["ca_cert"])
        if self._certificates["client_cert"]:
            context.load_cert_chain(self._certificates["client_cert"], self._certificates["client_key"])
        return context

    def _grpc_channel(self, target: str):
        import pathlib

        import grpc

        if not self.tls:
            return grpc.insecure_channel(target)
        pem = {
            name: pathlib.Path(path).read_bytes() if path else None
            for name, path in self._certificates.items()
        }
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pem["ca_cert"],
            private_key=pem["client_key"],
            certificate_chain=pem["client_cert"],
        )
        return grpc.secure_channel(target, credentials)

    def predict(
        self,
        model: str,
        images: np.ndarray,
        *,
        signature: str = "serving_default",
        version: int | None = None,
        input_name: str = "images",
    ) -> dict[str, np.ndarray]:
        """Runs `images` (a batch) through the model's input `input_name`; returns `{output name: array}`."""
        images = np.asarray(images, dtype="float32")
        if self.protocol == "grpc":
            return self._predict_grpc(model, images, signature, version, input_name)
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        body = {"signature_name": signature, "inputs": {input_name: images.tolist()}}
        outputs = self._post(path, body)["outputs"]
        if not isinstance(outputs, dict):  # TF Serving omits the name of a signature's only output
            (name,) = self._signature_outputs(model, signature, version)
            outputs = {name: outputs}
        return {key: np.asarray(value) for key, value in outputs.items()}

    def predict_bytes(
        self,
        model: str,
        encoded: list[bytes],
        *,
        input_name: str,
        signature: str = "serving_bytes",
        version: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Sends encoded images (file bytes) to a string input: `{"b64": ...}` over REST, DT_STRING over gRPC."""
        if self.protocol == "grpc":
            return self._predict_grpc(model, np.array(encoded, dtype=object), signature, version, input_name)
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
        values = [{"b64": base64.b64encode(data).decode()} for data in encoded]
        outputs = self._post(path, {"signature_name": signature, "inputs": {input_name: values}})["outputs"]
        if not isinstance(outputs, dict):  # TF Serving omits the name of a signature's only output
            (name,) = self._signature_outputs(model, signature, version)
            outputs = {name: outputs}
        return {key: np.asarray(value) for key, value in outputs.items()}

    def status(self, model: str) -> dict:
        return self._get(f"/v1/models/{model}")

    @staticmethod
    def _model_path(model: str, version: int | None) -> str:
        return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")

    def _signature_outputs(self, model: str, signature: str, version: int | None = None) -> list[str]:
        path = self._model_path(model, version) + "/metadata"
        signature_map = self._get(path)["metadata"]["signature_def"]["signature_def"]
        return list(signature_map[signature].get("outputs", {}))

    def latest_version(self, model: str) -> int | None:
        """The highest version the server reports AVAILABLE for `model` (None when it reports none)."""
        if self.protocol == "rest":
            states = self.status(model).get("model_version_status", [])
            available = [int(state["version"]) for state in states if state.get("state") == "AVAILABLE"]
            return max(available, default=None)
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        stub = model_service_pb2_grpc.ModelServiceStub(self._grpc_stub_channel())
        try:
            response = stub.GetModelStatus(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingClientError(error.code().name, error.details()) from None
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return max(
            (status.version for status in response.model_version_status if status.state == available),
            default=None,
        )

    def signature_inputs(self, model: str, version: int | None = None) -> dict:
        """`{signature name: {input name: (dims, ...)}}` from the metadata of `version` (default: the
        server's latest), over REST or gRPC."""
        if self.protocol == "rest":
            path = self._model_path(model, version) + "/metadata"
            signature_map = self._get(path)["metadata"]["signature_def"]["signature_def"]
            return {
                name: {
                    key: tuple(int(dim["size"]) for dim in spec["tensor_shape"].get("dim", []))
                    for key, spec in signature.get("inputs", {}).items()
                }
                for name, signature in signature_map.items()
            }
        import grpc
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        try:
            self._grpc_stub().GetModelMetadata(request, timeout=self.timeout).metadata[
                "signature_def"
            ].Unpack(signature_map)
        except grpc.RpcError as error:
            raise ServingClientError(error.code().name, error.details()) from None
        return {
            name: {
                key: tuple(dim.size for dim in spec.tensor_shape.dim)
                for key, spec in signature.inputs.items()
            }
            for name, signature in signature_map.signature_def.items()
        }

    def _grpc_stub_channel(self):
        if self._channel is None:
            self._channel = self._grpc_channel(self.url.split("://", 1)[1])
        return self._channel

    def _grpc_stub(self):
        if self._stub is None:
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._grpc_stub_channel())
        return self._stub

    def _get(self, path: str) -> dict:
        return self._request(urllib.request.Request(self.url + path))

    def _post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        return self._request(
            urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        )

    def _request(self, request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl_context) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", "")
            except ValueError:
                message = error.reason
            raise ServingClientError(error.code, message) from None

    def _predict_grpc(self, model, images, signature, version, input_name):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(images))
        try:
            response = self._grpc_stub().Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingClientError(error.code().name, error.details()) from None
        return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


# The values an 8-bit PNG/JPEG pixel takes, which `load_images` maps onto the model's pixel range.
IMAGE_FILE_RANGE = (0.0, 255.0)


def load_images(paths, row_shape, pixel_range: tuple[float, float] | None = None) -> np.ndarray:
    """PNG/JPEG (resized to the model's input) or .npy files (taken as they are), as one batch.

    `row_shape`: the input's per-row shape; images need (height, width, channels), any shape takes .npy.
    `pixel_range`: the model's input range, which image pixels (0..255) are scaled into; None keeps 0..255.
    """
    import pathlib

    from PIL import Image

    row_shape = tuple(row_shape)
    batch = []
    for path in map(pathlib.Path, paths):
        if not path.is_file():
            raise InvalidArgumentError(f"Image file not found: {path}")
        if path.suffix == ".npy":
            array = np.load(path).astype("float32")
            if array.shape == tuple(row_shape):
                batch.append(array)
            elif array.ndim == len(row_shape) + 1 and array.shape[1:] == row_shape:
                batch.extend(array)
            else:
                raise InvalidArgumentError(
                    f"{path} holds shape {array.shape}; expected {row_shape} or (N, *{row_shape})"
                )
            continue
        if len(row_shape) != 3:
            raise InvalidArgumentError(
                f"{path}: the model's input takes rows of shape {row_shape}, not images; "
                f"expected a .npy file of shape {row_shape} or (N, *{row_shape})"
            )
        height, width, channels = row_shape
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
                array = np.asarray(image, dtype="float32")
        except OSError as error:
            raise InvalidArgumentError(f"{path} is not a readable PNG/JPEG image: {error}") from None
        if pixel_range is not None:
            low, high = pixel_range
            array = low + array * ((high - low) / IMAGE_FILE_RANGE[1])
        batch.append(array.reshape(height, width, channels))
    return np.stack(batch)
