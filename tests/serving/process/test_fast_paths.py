"""The serving fast paths keep every answer the same: a cheap model (a row in well under a
millisecond) is answered on the event loops of REST and gRPC and never batched, other models on
threads; a lone batched request runs without the batcher's hop; gRPC tensors are read and written
without TensorFlow's converters; the garbage collector runs rarely."""

import gc
import json
import logging
import re
import threading

import numpy as np
import pytest

from kerasdrop.serving.models.batching import Batcher
from tests.serving.conftest import grpc_stubs, make_slow, rest, running_server

IMAGE = np.random.default_rng(4).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


def _record_threads(loaded) -> list[str]:
    """The names of the threads that run `loaded`'s backend from now on."""
    names, run = [], loaded.backend.run

    def recording(*args):
        names.append(threading.current_thread().name)
        return run(*args)

    loaded.backend.run = recording
    return names


def _grpc_predict(server, images):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    stub, _ = grpc_stubs(server)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lenet5"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return stub.Predict(request, timeout=30)


def _oip_infer(server, images):
    body = {
        "inputs": [
            {
                "name": "images",
                "shape": list(images.shape),
                "datatype": "FP32",
                "data": images.reshape(-1).tolist(),
            }
        ]
    }
    return rest(server, "POST", "/v2/models/lenet5/infer", body)


def test_a_cheap_model_is_answered_on_the_event_loops_and_a_large_body_on_a_thread(exported_repo):
    repo, model = exported_repo
    with running_server(repo=str(repo), backend="onnx") as server:
        loaded = server.manager.resolve("lenet5")
        assert loaded.cheap and 0 < loaded.row_seconds < 1e-3, loaded.row_seconds
        threads = _record_threads(loaded)
        status, answer = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": IMAGE.tolist()})
        assert status == 200 and threads[-1] == "kerasdrop-rest"
        expected = np.asarray(model(IMAGE, training=False))
        np.testing.assert_allclose(answer["predictions"][0]["probabilities"], expected[0], atol=1e-5)
        assert _oip_infer(server, IMAGE)[0] == 200 and threads[-1] == "kerasdrop-rest"
        assert _grpc_predict(server, IMAGE).outputs["probabilities"].tensor_shape.dim[1].size == 10
        assert threads[-1] == "kerasdrop-grpc-loop"
        many = np.repeat(IMAGE, 200, axis=0)  # ~200 KB of JSON: parsing it would hold the loop too long
        assert len(json.dumps({"instances": many.tolist()})) > 64 * 1024
        status, answer = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": many.tolist()})
        assert status == 200 and len(answer["predictions"]) == 200
        assert re.fullmatch(r"kerasdrop-http_\d+", threads[-1]), threads[-1]
        assert (
            _grpc_predict(server, np.repeat(IMAGE, 300, axis=0)).outputs["class_ids"].tensor_shape.dim[0].size
            == 300
        )
        assert re.fullmatch(r"kerasdrop-grpc_\d+", threads[-1]), threads[-1]
        assert gc.get_threshold() == (100_000, 50, 100), (
            "the server collects garbage rarely (server.GC_THRESHOLDS)"
        )


def test_a_model_over_the_threshold_runs_on_threads(exported_repo):
    repo, _ = exported_repo
    with running_server(repo=str(repo), backend="onnx", cheap_model_micros=0) as server:
        loaded = server.manager.resolve("lenet5")
        assert not loaded.cheap and loaded.row_seconds is None
        threads = _record_threads(loaded)
        assert rest(server, "POST", "/v1/models/lenet5:predict", {"instances": IMAGE.tolist()})[0] == 200
        assert re.fullmatch(r"kerasdrop-http_\d+", threads[-1]), threads[-1]
        assert _oip_infer(server, IMAGE)[0] == 200 and re.fullmatch(r"kerasdrop-http_\d+", threads[-1])
        _grpc_predict(server, IMAGE)
        assert re.fullmatch(r"kerasdrop-grpc_\d+", threads[-1]), threads[-1]


def test_a_slow_request_on_a_thread_does_not_hold_up_a_cheap_one(exported_repo):
    """The event loop only ever waits for cheap work: while a non-cheap request runs for 1.5 s, a
    cheap model on the same server answers at once."""
    import shutil
    import time

    repo, _ = exported_repo
    both = repo.parent / "both"
    if not both.exists():
        shutil.copytree(repo, both)
        shutil.copytree(repo / "lenet5", both / "slow")
    with running_server(repo=str(both), backend="onnx") as server:
        make_slow(server.manager.resolve("slow"), 1.5)
        waiting = threading.Thread(
            target=rest, args=(server, "POST", "/v1/models/slow:predict", {"instances": IMAGE.tolist()})
        )
        waiting.start()
        time.sleep(0.3)
        started = time.perf_counter()
        assert rest(server, "POST", "/v1/models/lenet5:predict", {"instances": IMAGE.tolist()})[0] == 200
        assert time.perf_counter() - started < 0.5
        waiting.join()


def test_a_cheap_model_is_not_batched_and_the_log_says_why(exported_repo, caplog):
    repo, _ = exported_repo
    with caplog.at_level(logging.INFO, logger="kerasdrop.serve"):
        with running_server(repo=str(repo), backend="onnx", enable_batching=True) as server:
            assert server.manager.resolve("lenet5").batchers == {}
    assert "answered as they come, unbatched (--cheap-model-micros 1000)" in caplog.text
    with running_server(repo=str(repo), backend="onnx", enable_batching=True, cheap_model_micros=0) as server:
        assert set(server.manager.resolve("lenet5").batchers) >= {"serving_default"}


def test_a_lone_request_runs_in_its_own_thread_and_company_goes_to_the_batcher():
    ran_in = []

    def run(inputs):
        ran_in.append(threading.current_thread().name)
        return {"y": inputs["x"] * 2}

    for in_flight, expected in ((1, threading.current_thread().name), (2, "kerasdrop-batcher")):
        batches = []
        batcher = Batcher(
            run,
            max_batch_size=8,
            batch_timeout_micros=1000,
            in_flight=lambda n=in_flight: n,
            on_batch=batches.append,
        )
        assert batcher.submit({"x": np.array([3.0])}, timeout=10)["y"][0] == 6.0
        batcher.stop()
        assert ran_in[-1] == expected and batches == [1], "either way it is one batch of one row"


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).random((2, 10), np.float32),
        np.arange(6).reshape(2, 3),
        np.arange(4, dtype=np.int32),
        np.random.default_rng(1).random((3, 1)),
        np.random.default_rng(2).random((4, 4))[:, ::2],
        np.zeros((0, 3), np.float32),
        np.float32(1.5).reshape(()),
        np.array([b"a", b"bc"], dtype=object),
        np.array([True, False]),
        np.array([2.5], np.float32),
        np.array([[0.7]], np.float32),
        np.array([3]),
        np.array([7], np.int32),
        np.array([[0.25]]),
        np.zeros((2, 0), np.int64),
    ],
)  # one value: TF writes float_val etc., not tensor_content
def test_tensor_protos_are_tensorflows_own(array):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    from kerasdrop.serving.protocols.tfserving.tensors import (
        array_to_proto,
        tensor_to_array,
    )

    proto = array_to_proto(array)
    assert proto == tf.make_tensor_proto(array), "byte for byte what TensorFlow writes"
    into = tensor_pb2.TensorProto()
    assert array_to_proto(array, into) is into and into == proto, (
        "written in place, as into a response's outputs"
    )
    used = tf.make_tensor_proto(np.arange(3, dtype=np.int64).reshape(1, 3))
    assert array_to_proto(array, used) is used and used == proto, "written whole over what was there"
    signature_input = meta_graph_pb2.TensorInfo(dtype=proto.dtype)
    read = tensor_to_array("x", 0, proto, signature_input, 1 << 20)
    assert read.dtype == tf.make_ndarray(proto).dtype and np.array_equal(read, array)


def test_large_json_bodies_become_arrays_one_at_a_time_and_run_without_the_lock(exported_repo, monkeypatch):
    from kerasdrop.serving.protocols import json_body as rest_module

    held_while_parsing, held_while_running = [], []
    parse = rest_module.parse_json

    def recording_parse(body):
        held_while_parsing.append(rest_module._CONVERTING.locked())
        return parse(body)

    monkeypatch.setattr(rest_module, "parse_json", recording_parse)
    repo, _ = exported_repo
    with running_server(repo=str(repo), backend="onnx") as server:
        loaded = server.manager.resolve("lenet5")
        run = loaded.backend.run
        loaded.backend.run = lambda *args: (
            held_while_running.append(rest_module._CONVERTING.locked()),
            run(*args),
        )[1]
        for rows in (1, 200):  # ~1 KB, then ~200 KB of JSON
            assert (
                rest(
                    server,
                    "POST",
                    "/v1/models/lenet5:predict",
                    {"instances": np.repeat(IMAGE, rows, axis=0).tolist()},
                )[0]
                == 200
            )
    assert held_while_parsing == [False, True], "only the large body takes the lock"
    assert held_while_running == [False, False], "the run never holds it: runs overlap"


def test_a_tensor_content_of_the_wrong_length_is_invalid_argument():
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    from kerasdrop.serving.errors import ServingError
    from kerasdrop.serving.protocols.tfserving.tensors import tensor_to_array

    proto = tensor_pb2.TensorProto(dtype=1, tensor_content=bytes(26))  # [2, 3] floats are 24 bytes
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=3)
    with pytest.raises(ServingError) as raised:
        tensor_to_array("x", 0, proto, meta_graph_pb2.TensorInfo(dtype=1), 1 << 20)
    assert (
        raised.value.code == "INVALID_ARGUMENT"
        and "holds 26 bytes, not 6 values of 4 bytes" in raised.value.message
    )


class _NoModels:
    def cheap(self, name):
        return False

    def record_request(self, *args):
        pass

    def readiness(self):
        return True, ""


def test_grpc_drain_answers_a_call_accepted_before_the_stop_and_a_second_stop_is_the_first(tmp_path):
    """A call whose message arrives after stop() (accepted before it) still gets a thread and its
    answer; stop() twice returns the same event, set once the server and its loop ended."""
    import time

    import grpc

    from kerasdrop.serving.process.grpc_server import GrpcServer
    from kerasdrop.serving.protocols.oip.grpc_service import open_inference_services
    from kerasdrop.serving.protocols.oip.messages import messages

    manager = _NoModels()
    server = GrpcServer(
        manager, "127.0.0.1:0", open_inference_services(manager), 4, [("grpc.so_reuseport", 0)]
    )
    server.start()
    release, result = threading.Event(), {}

    def request_later():
        release.wait()
        yield messages.ServerLiveRequest()

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_unary(
            "/inference.GRPCInferenceService/ServerLive",
            request_serializer=messages.ServerLiveRequest.SerializeToString,
            response_deserializer=messages.ServerLiveResponse.FromString,
        )
        caller = threading.Thread(
            target=lambda: result.setdefault("live", call(request_later(), timeout=10).live)
        )
        caller.start()
        time.sleep(0.5)
        stopped = server.stop(5)
        time.sleep(0.2)
        release.set()
        caller.join(timeout=15)
    assert result == {"live": True}
    assert stopped.wait(10) and server.stop(1) is stopped


def test_grpc_methods_left_to_the_generated_base_answer_unimplemented_streaming_ones_too():
    import grpc
    from tensorflow_serving.apis import inference_pb2, prediction_service_pb2_grpc

    from kerasdrop.serving.process.grpc_server import GrpcServer
    from kerasdrop.serving.protocols.oip.grpc_service import open_inference_services
    from kerasdrop.serving.protocols.oip.messages import (
        GRPCInferenceServiceStub,
        messages,
    )
    from kerasdrop.serving.protocols.tfserving.grpc_service import tf_serving_services

    manager = _NoModels()
    server = GrpcServer(
        manager,
        "127.0.0.1:0",
        tf_serving_services(manager) + open_inference_services(manager),
        4,
        [("grpc.so_reuseport", 0)],
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            oip = GRPCInferenceServiceStub(channel)
            calls = [
                lambda: list(oip.ModelStreamInfer(iter([messages.ModelInferRequest()]), timeout=10)),
                lambda: oip.RepositoryIndex(messages.RepositoryIndexRequest(), timeout=10),
                lambda: prediction_service_pb2_grpc.PredictionServiceStub(channel).MultiInference(
                    inference_pb2.MultiInferenceRequest(), timeout=10
                ),
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as raised:
                    call()
                assert (raised.value.code(), raised.value.details()) == (
                    grpc.StatusCode.UNIMPLEMENTED,
                    "Method not implemented!",
                )
    finally:
        server.stop(0).wait(10)


class _Timed:
    """A backend whose signatures take `seconds[name]` a run and declare `inputs[name]` (dtype, dims)."""

    def __init__(self, seconds, inputs):
        from tensorflow.core.protobuf import meta_graph_pb2

        self.seconds, self.signature_defs = seconds, {}
        for name, (dtype, dims) in inputs.items():
            signature = meta_graph_pb2.SignatureDef()
            signature.inputs["x"].dtype = dtype
            for size in dims:
                signature.inputs["x"].tensor_shape.dim.add(size=size)
            self.signature_defs[name] = signature

    def signature_names(self):
        return list(self.signature_defs)

    def run(self, name, feed):
        import time

        time.sleep(self.seconds[name])
        return {}


def test_a_model_is_timed_on_its_slowest_signature_and_untimeable_ones_make_it_not_cheap():
    from kerasdrop.serving.models.backends import row_seconds

    float_rows = (1, [-1, 4])
    timed = row_seconds(
        _Timed(
            {"serving_default": 0.0, "mc_dropout": 0.01},
            {"serving_default": float_rows, "mc_dropout": float_rows},
        )
    )
    assert 0.01 <= timed < 0.1, "the slowest signature (mc_dropout's N passes) decides"
    for untimeable in ((7, [-1]), (1, [-1, -1, -1, 3])):  # strings (image bytes); an image of any size
        assert (
            row_seconds(
                _Timed(
                    {"serving_default": 0.0, "other": 0.0},
                    {"serving_default": float_rows, "other": untimeable},
                )
            )
            is None
        )
