"""Requests written to hurt the server, against a real server with its limits set small: each resource a
request can claim is refused before it is spent, with a 4xx (or RESOURCE_EXHAUSTED / INVALID_ARGUMENT)
that names the flag, and the server keeps answering everyone else."""

import base64
import concurrent.futures
import io
import json
import socket
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.exporting.test_image_bytes import rgb_export  # noqa: F401  (a module fixture)
from tests.serving.conftest import grpc_stubs, make_slow, rest, running_server

SHAPE = (16, 16, 3)


LIMITS = {
    "max_header_bytes": 4096,
    "max_header_count": 20,
    "header_timeout_seconds": 1.0,
    "keep_alive_seconds": 1.0,
    "body_timeout_seconds": 1.0,
    "max_image_pixels": 64 * 64,
    "max_concurrent_requests": 4,
}


@pytest.fixture(scope="module")
def server(rgb_export):  # noqa: F811  (the imported fixture, by name)
    result, _ = rgb_export  # an RGB lenet5 on 16x16x3, exported with --image-bytes
    with running_server(repo=str(result.path.parent.parent), **LIMITS) as running:
        yield running


def _png(width, height, idat=b""):
    """A PNG whose header declares `width` x `height` (its pixel data need not be all there)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", idat or zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def _encoded(fmt, size=(16, 16)):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3)).astype("uint8")).save(
        buffer, format=fmt
    )
    return buffer.getvalue()


def _bytes_request(*images):
    return {
        "signature_name": "serving_bytes",
        "instances": [{"b64": base64.b64encode(i).decode()} for i in images],
    }


def _raw(server, data: bytes, *, read_seconds: float = 10) -> bytes:
    """Sends `data` on a fresh connection and reads until the server closes it (or `read_seconds`)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=read_seconds) as sock:
        try:
            sock.sendall(data)
        except (
            BrokenPipeError,
            ConnectionResetError,
        ):  # cut off while sending: what it answered is still there
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def _status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


# --- images -------------------------------------------------------------------------------------


def test_an_image_bomb_is_refused_from_its_header_before_it_is_decoded(server):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bomb = _png(20000, 20000)  # a small file declaring 400 million pixels (~1.2 GB decoded)
    status, body = rest(server, "POST", "/v1/models/rgb:predict", _bytes_request(bomb))
    assert status == 413 and "20000x20000" in body["error"] and "--max-image-pixels" in body["error"], body
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 200_000, "the bomb was decoded (peak RSS rose by more than 200 MB)"


def test_images_are_counted_together_against_the_pixel_limit(server):
    small = _encoded("PNG", (40, 40))  # 1600 pixels each, 4096 allowed per request
    assert rest(server, "POST", "/v1/models/rgb:predict", _bytes_request(small, small))[0] == 200
    status, body = rest(server, "POST", "/v1/models/rgb:predict", _bytes_request(small, small, small))
    assert status == 413 and "4800 pixels" in body["error"] and "--max-image-pixels" in body["error"], body


@pytest.mark.parametrize(
    "data, expected",
    [
        (_encoded("JPEG")[:300], "Truncated JPEG"),
        (_encoded("JPEG")[:-40], "Truncated JPEG"),
        (_encoded("PNG")[:-30], "Truncated PNG"),
        (b"GIF89a" + bytes(20), "not a JPEG or PNG"),
        (b"plain text", "not a JPEG or PNG"),
    ],
)
def test_a_bad_image_is_answered_with_what_is_wrong_with_it(server, data, expected):
    status, body = rest(server, "POST", "/v1/models/rgb:predict", _bytes_request(data))
    assert status == 400 and expected in body["error"], body
    assert "Graph execution error" not in body["error"]


def test_grpc_gets_the_same_image_limits(server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "rgb", "serving_bytes"
    request.inputs["images_bytes"].CopyFrom(
        tf.make_tensor_proto(np.array([_png(20000, 20000)], dtype=object))
    )
    with pytest.raises(grpc.RpcError) as raised:
        grpc_stubs(server)[0].Predict(request, timeout=30)
    assert (
        raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        and "--max-image-pixels" in raised.value.details()
    )


# --- request heads --------------------------------------------------------------------------------


def test_a_header_over_the_size_limit_is_431_before_it_is_all_read(server):
    answer = _raw(
        server, b"GET /v1/models/rgb HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n"
    )
    status, error = _status_and_error(answer)
    assert status == 431 and "--max-header-bytes" in error


def test_too_many_header_fields_is_431(server):
    headers = b"".join(b"X-%d: 1\r\n" % index for index in range(500))
    status, error = _status_and_error(
        _raw(server, b"GET /v1/models/rgb HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    )
    assert status == 431 and "--max-header-count" in error


def test_a_client_trickling_its_header_is_cut_at_the_header_timeout(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        answer = b""
        try:
            for byte in b"GET /v1/models/rgb HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    status, error = _status_and_error(answer)
    assert status == 408 and "--header-timeout-seconds" in error
    assert time.monotonic() - started < 8, "the trickle went on past the 1 s header timeout"


def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_time(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        assert sock.recv(1) == b""  # closed by the server, not by our timeout
    assert time.monotonic() - started < 8


def test_a_body_that_stalls_is_408_and_holds_no_request_slot(server):
    head = b'POST /v1/models/rgb:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"instances": '
    with concurrent.futures.ThreadPoolExecutor(
        8
    ) as pool:  # more stalled bodies than --max-concurrent-requests
        stalled = [pool.submit(_raw, server, head) for _ in range(8)]
        time.sleep(0.3)
        assert rest(server, "GET", "/v1/models/rgb")[0] == 200
        status, body = rest(
            server, "POST", "/v1/models/rgb:predict", {"instances": np.zeros((1, *SHAPE)).tolist()}
        )
        assert status == 200, body  # the stalled bodies took no slot of the 4
        answers = [future.result() for future in stalled]
    for answer in answers:
        status, error = _status_and_error(answer)
        assert status == 408 and "--body-timeout-seconds" in error


def test_a_declared_body_claims_no_memory_before_it_arrives(server):
    import resource

    head = b"POST /v1/models/rgb:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sockets = [socket.create_connection(("127.0.0.1", server.rest_port)) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(head)
        time.sleep(0.5)  # 20 x 60 MB declared: 1.2 GB if claimed up front
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    finally:
        for sock in sockets:
            sock.close()
    assert grown < 200_000, f"peak RSS grew by {grown} KiB for bodies that never came"


def test_ordinary_requests_pass_the_head_limits(server):
    status, body = rest(server, "GET", "/v1/models/rgb")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"


# --- concurrency ----------------------------------------------------------------------------------


def test_rest_requests_beyond_the_concurrency_limit_get_429_naming_the_flag(server):
    loaded = server.manager.resolve("rgb")
    run = loaded.backend.run
    make_slow(loaded, 0.5)
    try:
        body = {"instances": np.zeros((1, *SHAPE)).tolist()}
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(lambda _: rest(server, "POST", "/v1/models/rgb:predict", body), range(12))
            )
    finally:
        loaded.backend.run, loaded.cheap = run, False
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) == {200, 429} and statuses.count(200) >= 4, statuses
    refused = next(body for status, body in answers if status == 429)
    assert "--max-concurrent-requests" in refused["error"]


@pytest.mark.slow
def test_grpc_calls_beyond_the_concurrency_limit_are_resource_exhausted_never_cancelled(server):
    """1,500 calls at once on one worker: each answers OK or RESOURCE_EXHAUSTED (grpcio's own limit
    had CANCELLED those beyond ~1,000)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    loaded = server.manager.resolve("rgb")
    run = loaded.backend.run
    make_slow(loaded, 0.2)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "rgb"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, *SHAPE), np.float32)))
    codes = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            calls = [stub.Predict.future(request, timeout=60) for _ in range(1500)]
            for call in calls:
                try:
                    call.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
                    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        assert "--max-concurrent-requests" in error.details()
    finally:
        loaded.backend.run, loaded.cheap = run, False
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
    assert codes.count(grpc.StatusCode.OK) >= 4 and grpc.StatusCode.RESOURCE_EXHAUSTED in codes


# --- work linear in a request's size --------------------------------------------------------------


def test_open_inference_inputs_beyond_the_signatures_are_refused_before_per_input_work(server):
    inputs = [
        {"name": f"x{index}", "datatype": "FP32", "shape": [1], "data": [0.0]} for index in range(40_000)
    ]
    status, body = rest(server, "POST", "/v2/models/rgb/infer", {"inputs": inputs})
    assert status == 400 and "40000 inputs" in body["error"], body


def test_open_inference_duplicate_inputs_are_refused(server):
    tensor = {"name": "images", "datatype": "FP32", "shape": [1, *SHAPE], "data": [0.0] * int(np.prod(SHAPE))}
    with running_server(
        repo=str(server.config.repo)
    ) as other:  # default limits: two inputs are allowed to parse
        status, body = rest(other, "POST", "/v2/models/rgb/infer", {"inputs": [tensor, tensor]})
    assert status == 400 and ("more than once" in body["error"] or "2 inputs" in body["error"]), body


def test_a_tf_serving_request_naming_thousands_of_inputs_is_refused_at_once(server):
    status, body = rest(
        server, "POST", "/v1/models/rgb:predict", {"inputs": {f"x{i}": [0] for i in range(40_000)}}
    )
    assert status == 400 and "40000 inputs" in body["error"], body


def test_a_tensorflow_error_keeps_its_cause_not_graph_execution_error():
    import tensorflow as tf

    from kerasdrop.serving.models.backends import error_cause

    @tf.function
    def decode(data):
        return tf.io.decode_jpeg(data)

    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        decode(tf.constant(_encoded("JPEG")[:300]))
    assert raised.value.message.startswith("Graph execution error")  # what clients were answered before
    cause = error_cause(raised.value)
    assert "JPEG" in cause and "DecodeJpeg" in cause and "Graph execution error" not in cause, cause


def test_a_lone_crlf_does_not_keep_a_connection_open(server):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(b"\r\n")  # the parser skips it: no request begins, yet the idle timer was cancelled
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert time.monotonic() - started < 8
    assert not answer or _status_and_error(answer)[0] == 408


def test_a_head_over_the_limit_is_431_even_when_it_arrives_in_one_read(server):
    answer = _raw(server, b"GET /v1/models/rgb?" + b"q" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, error = _status_and_error(answer)
    assert status == 431 and "--max-header-bytes" in error


def _gif(screen, frames):
    """A GIF with a `screen` (w, h) logical screen and one tiny-data frame per (left, top, w, h)."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0, 0, 0)
    for left, top, width, height in frames:
        out += b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return out + b"\x3b"


def test_image_headers_are_read_as_a_decoder_would_make_room_for_them():
    from kerasdrop.serving.models.images import declared_size

    width, height, frames = declared_size(_gif((1, 1), [(0, 0, 1, 1), (0, 0, 6000, 6000)]), images_only=False)
    assert (width, height, frames) == (6000, 6000, 2)  # a frame beyond the 1x1 screen
    assert declared_size(b"GIF8xa" + _gif((50, 60), [(0, 0, 50, 60)])[6:], images_only=False)[:2] == (50, 60)
    assert declared_size(b"BMW X5 is a car made by a German company", images_only=False) is None


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused():
    from kerasdrop.serving.errors import ServingError
    from kerasdrop.serving.models.images import MAX_JPEG_SCANS, declared_size

    progressive = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(progressive, format="JPEG", progressive=True)
    data = progressive.getvalue()
    assert declared_size(data, images_only=True)[:2] == (64, 64)
    last_scan = data.rindex(b"\xff\xda")
    padded = (
        data[:-2] + data[last_scan:-2] * (MAX_JPEG_SCANS + 5) + b"\xff\xd9"
    )  # the last scan again and again
    with pytest.raises(ServingError, match="scans"):
        declared_size(padded, images_only=True)


def test_a_tf_example_context_counts_its_bytes_for_every_example():
    from kerasdrop.serving.errors import ServingError
    from kerasdrop.serving.protocols.tfserving.examples import (
        check_context_size,
        json_context_values,
    )

    check_context_size(10, json_context_values({"x": 1.0, "tags": ["a", "b"]}), 1 << 24)
    with pytest.raises(ServingError, match="--max-elements"):
        check_context_size(100, json_context_values({"blob": "a" * 1_000_000}), 1 << 24)
