"""Bad requests of every kind get a 4xx JSON answer at once; limits hold; ports are not shared."""

import socket
import threading
import time

import numpy as np
import pytest

from tests.serving.conftest import grpc_stubs, make_slow, rest, running_server

IMAGE = np.random.default_rng(2).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module")
def onnx_server(exported_repo):
    repo, _ = exported_repo
    with running_server(
        repo=str(repo), backend="onnx", max_body_bytes=200_000, max_elements=100_000
    ) as server:
        yield server


def _raw(server, data: bytes, timeout=10) -> bytes:
    """Sends raw bytes on one connection and returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_request_hidden_in_a_chunked_body_is_not_answered(onnx_server):
    hidden = _post("/v1/models/lenet5", b"")  # a GET-like request smuggled inside the body
    body = b'{"inputs": [1.0]}' + hidden
    chunked = (
        b"POST /v1/models/lenet5:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    )
    answer = _raw(onnx_server, chunked)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert answer.startswith(b"HTTP/1.1 400") and b"JSON Parse error" in answer


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(onnx_server):
    chunk = b"[" + b"0," * 50_000 + b"0]"  # ~100 KB per chunk, the limit is 200 KB
    data = b"POST /v1/models/lenet5:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    answer = _raw(onnx_server, data)
    assert answer.startswith(b"HTTP/1.1 413") and b"exceeds the limit of 200000 bytes" in answer


@pytest.mark.parametrize(
    "body, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, "JSON Parse error"),
        (b'{"inputs": [' + b"7" * 5000 + b"]}", "JSON Parse error"),
        (b'{"inputs": [[[[1e999]]]]}', "infinity"),
    ],
)
def test_hostile_json_is_a_400_not_a_500(onnx_server, body, message):
    status, answer = rest(onnx_server, "POST", "/v1/models/lenet5:predict", raw=body)
    assert status == 400 and message in answer["error"], answer


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_a_json_4xx_not_html(onnx_server, method):
    status, answer = rest(onnx_server, method, "/v1/models/lenet5:predict", raw=b"{}")
    assert 400 <= status < 500 and "Malformed request" in answer["error"]


def test_unknown_paths_get_json_404(onnx_server):
    status, answer = rest(onnx_server, "GET", "/index.html")
    assert status == 404 and "Malformed request" in answer["error"]


def test_version_beyond_int64_is_a_400(onnx_server):
    status, answer = rest(onnx_server, "GET", "/v1/models/lenet5/versions/99999999999999999999")
    assert status == 400 and "64-bit" in answer["error"]


def test_elements_over_the_limit_are_refused_before_any_array_is_built(onnx_server):
    from kerasdrop.serving.errors import ServingError
    from kerasdrop.serving.models.inputs import validate_inputs

    loaded = onnx_server.manager.resolve("lenet5")
    signature_def = loaded.backend.signature_defs["serving_default"]
    rows = [[[[0.0]] * 8] * 8] * 20  # 20 x 8 x 8 x 1 = 1280 elements, read along the first items
    with pytest.raises(ServingError) as raised:
        validate_inputs(signature_def, {"images": rows}, max_elements=1000)
    assert raised.value.status == 413 and "1280 elements; the limit is 1000" in raised.value.message
    assert validate_inputs(signature_def, {"images": rows}, max_elements=1280)["images"].shape == (
        20,
        8,
        8,
        1,
    )


def test_metrics_labels_are_escaped_and_unknown_models_share_one_label(onnx_server):
    for index in range(300):
        rest(onnx_server, "GET", f"/v1/models/evil%22name{index}%0A")
    rest(onnx_server, "GET", '/v1/models/a"b')
    text = rest(onnx_server, "GET", "/monitoring/prometheus/metrics")[1]
    assert "evil" not in text and 'a"b' not in text
    assert 'model_name="__unknown__"' in text
    assert len(text) < 20_000, "the page does not grow with the names clients send"
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.count('"') % 2 == 0, line


def _dtype_request(array, name="images", signature=""):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lenet5"
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


@pytest.mark.parametrize(
    "dtype, name", [("float64", "double"), ("int64", "int64"), ("bool", "bool"), ("complex64", "complex64")]
)
def test_grpc_rejects_another_dtype_as_tf_serving_does(onnx_server, dtype, name):
    import grpc

    stub, _ = grpc_stubs(onnx_server)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(_dtype_request(np.zeros((1, 8, 8, 1), dtype=dtype)), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"Expects arg[0] to be float but {name} is provided"


def test_grpc_unknown_signature_is_tf_servings_failed_precondition(onnx_server):
    import grpc

    stub, _ = grpc_stubs(onnx_server)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(_dtype_request(IMAGE, signature="nope"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == 'Serving signature key "nope" not found.'


def test_grpc_output_filter_is_checked_as_tf_serving_checks_it(onnx_server):
    import grpc
    import tensorflow as tf

    stub, _ = grpc_stubs(onnx_server)
    request = _dtype_request(IMAGE)
    outputs = sorted(stub.Predict(request, timeout=30).outputs)
    assert len(outputs) > 1, outputs
    request.output_filter.append(outputs[-1])
    answer = stub.Predict(request, timeout=30)
    assert (
        list(answer.outputs) == [outputs[-1]] and tf.make_ndarray(answer.outputs[outputs[-1]]).shape[0] == 1
    )
    for extra, message in (
        ("nope", "output tensor alias not found in signature: nope"),
        (outputs[-1], f"duplicate output tensor alias: {outputs[-1]}"),
    ):
        request.output_filter.append(extra)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=30)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and raised.value.details() == message
        del request.output_filter[-1]


def test_grpc_shape_is_checked_against_the_values_sent(onnx_server):
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    stub, _ = grpc_stubs(onnx_server)
    request = _dtype_request(IMAGE)
    for dims, limit in (([100000, 8, 8, 1], True), ([2, 8, 8, 1], False)):
        tiny = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            float_val=[1.0],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in dims]),
        )
        request.inputs["images"].CopyFrom(tiny)
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=30)
        assert time.perf_counter() - started < 2
        if limit:
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "6400000 elements; the limit is 100000" in raised.value.details()
        else:
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "declares shape [2, 8, 8, 1] (128 values) but carries 1 values" in raised.value.details()


def test_max_inflight_refuses_at_once_with_429_and_resource_exhausted(exported_repo):
    import grpc

    repo, _ = exported_repo
    with running_server(repo=str(repo), backend="onnx", max_inflight=1) as server:
        make_slow(server.manager.resolve("lenet5"), 1.5)  # the first request holds the one slot meanwhile
        first = threading.Thread(
            target=rest, args=(server, "POST", "/v1/models/lenet5:predict", {"inputs": IMAGE.tolist()})
        )
        first.start()
        time.sleep(0.5)
        started = time.perf_counter()
        status, answer = rest(server, "POST", "/v1/models/lenet5:predict", {"inputs": IMAGE.tolist()})
        assert status == 429 and "--max-inflight 1" in answer["error"]
        stub, _ = grpc_stubs(server)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(_dtype_request(IMAGE), timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.perf_counter() - started < 1.0, "refused at once, not queued"
        first.join()
        assert rest(server, "POST", "/v1/models/lenet5:predict", {"inputs": IMAGE.tolist()})[0] == 200


def test_ports_in_use_are_errors_that_name_the_port(exported_repo):
    from kerasdrop.serving.process.ports import PortInUseError
    from kerasdrop.serving.process.server import ServeConfig, Server

    repo, _ = exported_repo
    with running_server(repo=str(repo), backend="onnx") as first:
        for ports, flag in (
            ({"rest_port": first.rest_port, "grpc_port": 0}, "--rest-port"),
            ({"rest_port": 0, "grpc_port": first.grpc_port}, "--grpc-port"),
        ):
            with pytest.raises(PortInUseError) as raised:
                Server(ServeConfig(repo=str(repo), backend="onnx", poll_seconds=0, **ports)).start()
            port = ports["rest_port"] or ports["grpc_port"]
            assert f"port {port}" in str(raised.value) and flag in str(raised.value)
        assert rest(first, "GET", "/v1/models/lenet5")[0] == 200


def test_an_ipv6_host_serves_both_protocols_and_a_foreign_address_names_host(exported_repo):
    import json
    import urllib.request

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from kerasdrop.serving.process.ports import PortInUseError
    from kerasdrop.serving.process.server import ServeConfig, Server

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as error:
        pytest.skip(f"no IPv6 loopback on this machine ({error.strerror})")
    repo, _ = exported_repo
    with running_server(repo=str(repo), backend="onnx", host="::1") as server:
        body = json.dumps({"instances": IMAGE.tolist()}).encode()
        with urllib.request.urlopen(
            urllib.request.Request(f"http://[::1]:{server.rest_port}/v1/models/lenet5:predict", data=body),
            timeout=30,
        ) as answer:
            assert answer.status == 200
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"[::1]:{server.grpc_port}")
        )
        assert stub.Predict(_dtype_request(IMAGE), timeout=30).outputs
    for host in ("192.0.2.1", "no-such-host.invalid"):  # TEST-NET-1: an address this machine does not have
        try:
            with socket.socket() as probe:
                probe.bind((host, 0))
            continue  # this machine has it after all (or binds any address): nothing to refuse
        except OSError:
            pass
        with pytest.raises(PortInUseError) as raised:
            Server(
                ServeConfig(
                    repo=str(repo), backend="onnx", poll_seconds=0, host=host, rest_port=0, grpc_port=0
                )
            ).start()
        assert str(raised.value).startswith(
            f"Cannot listen for REST on {host}:0: "
        ) and "check --host" in str(raised.value)


def test_a_server_that_fails_to_start_leaves_no_port_bound(exported_repo, monkeypatch):
    from kerasdrop.serving.models.manager import ModelManager
    from kerasdrop.serving.process.server import ServeConfig, Server
    from tests.ports import free_port

    def broken_sync(self):
        raise RuntimeError("the repository broke mid-start")

    monkeypatch.setattr(ModelManager, "sync", broken_sync)
    repo, _ = exported_repo
    rest_port, grpc_port = free_port(), free_port()
    with pytest.raises(RuntimeError, match="mid-start"):
        Server(
            ServeConfig(
                repo=str(repo),
                backend="onnx",
                poll_seconds=0,
                rest_port=rest_port,
                grpc_port=grpc_port,
                workers=2,
            )
        ).start()
    for port in (rest_port, grpc_port):  # nothing of the failed server still holds them
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))
            again.listen()


def test_serve_exits_2_naming_a_busy_port(exported_repo, capsys):
    from kerasdrop.cli import main

    repo, _ = exported_repo
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--repo", str(repo), "--rest-port", str(port), "--grpc-port", "0"]) == 2
    assert f"REST port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err
