"""Large JSON bodies are parsed in a helper process, with the in-process path's results and errors."""

import json

import numpy as np
import orjson
import pytest

from kerasdrop.serving.protocols.parse_lane import (
    LANE_MIN_BYTES,
    ParseLane,
    parse_numeric_request,
)
from tests.serving.conftest import rest, running_server


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1.5, 2], [3, 4]]},
        {"inputs": [[1, 2]], "signature_name": "x"},
        {"inputs": {"a": [1.0], "b": [[2, 3]]}},
        {"instances": [[-1e30, 0.0]]},
    ],
)
def test_numeric_bodies_become_the_arrays_orjson_gives(body):
    parsed = parse_numeric_request(json.dumps(body).encode())
    key = "instances" if "instances" in body else "inputs"
    assert {k: v for k, v in parsed.items() if k != key} == {k: v for k, v in body.items() if k != key}
    values = parsed[key] if isinstance(parsed[key], dict) else {"": parsed[key]}
    expected = body[key] if isinstance(body[key], dict) else {"": body[key]}
    for name, value in expected.items():
        assert isinstance(values[name], np.ndarray) and np.array_equal(values[name], np.asarray(value))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"instances": [[1, 2], [3]]}',
        b'{"instances": [["a"]]}',
        b'{"instances": [1, 2',
        b"[1, 2]",
        b'{"instances": [1], "inputs": [1]}',
        b'{"instances": []}',
        b'{"instances": [{"b64": "AA=="}]}',
        b'{"instances": [NaN]}',
        b'{"instances": [true]}',
        b'{"instances": [[1, "2"]]}',
    ],
)
def test_anything_else_is_left_to_the_in_process_parse(raw):
    assert parse_numeric_request(raw) is None


def test_the_lane_process_answers_like_the_function_and_survives_being_killed():
    lane = ParseLane()
    body = json.dumps({"instances": np.arange(24.0).reshape(2, 3, 4).tolist()}).encode()
    try:
        assert np.array_equal(lane.parse(body)["instances"], np.arange(24.0).reshape(2, 3, 4))
        assert lane.parse(b'{"instances": [[1], [2, 3]]}') is None
        first = lane._process
        first.kill()
        first.wait()
        assert lane.parse(body)["instances"].shape == (2, 3, 4), "a new helper"
        assert lane._process.pid != first.pid
        lane._process.stdout.close()  # a helper that breaks mid-answer: the caller parses in place
        assert lane.parse(body) is None and lane._process is None
    finally:
        lane.stop()


@pytest.mark.slow
def test_a_large_request_gets_the_same_answers_and_errors_through_the_lane(exported_repo):
    repo, _ = exported_repo
    rows = np.random.default_rng(0).uniform(0, 16, (LANE_MIN_BYTES // 300, 8, 8, 1)).round(3)
    with running_server(repo=str(repo), backend="onnx") as server:
        small = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": rows[:3].tolist()})
        big = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": rows.tolist()})
        assert len(orjson.dumps({"instances": rows.tolist()})) > LANE_MIN_BYTES
        assert big[0] == 200 and len(big[1]["predictions"]) == len(rows)
        assert big[1]["predictions"][:3] == small[1]["predictions"]
        assert server.manager.admission.inflight("lenet5") == 0
        router = next(r for r in server._uvicorn.config.app.routers if hasattr(r, "lane"))
        assert router.lane._process is not None, "the large body went through the lane"
        wrong = rows[:, :7].tolist()
        expected = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": wrong[:2]})
        answer = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": wrong})
        assert answer[0] == expected[0] == 400
        assert answer[1]["error"].split("received")[0] == expected[1]["error"].split("received")[0]
        ragged = json.dumps({"instances": rows.tolist() + [[1.0]]}).encode()
        answer = rest(server, "POST", "/v1/models/lenet5:predict", raw=ragged)
        assert answer[0] == 400 and "rectangular" in answer[1]["error"]
        helper = router.lane._process
    assert helper.poll() is not None, "the server's stop ends its helper"
