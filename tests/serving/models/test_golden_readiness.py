"""Readiness that means correct answers: a version serves only after its golden requests replay and
match on the backend that serves it; a tampered version never serves and the old one keeps serving."""

import json
import logging
import shutil

import numpy as np
import pytest

from kerasdrop.serving.models.manager import ModelManager
from kerasdrop.serving.models.repository import VersionPolicy
from tests.serving.conftest import rest, running_server, write_golden

IMAGE = np.random.default_rng(3).uniform(0, 16, (1, 8, 8, 1)).astype("float32")


@pytest.fixture()
def golden_repo(exported_repo, tmp_path):
    """A copy of the exported repository whose version 1 has golden.json."""
    source, model = exported_repo
    repo = tmp_path / "export"
    shutil.copytree(source, repo)
    write_golden(repo / "lenet5" / "1")
    return repo, model


def _new_version(repo, edit=None, golden_backend="tf"):
    """Version 2: a copy of version 1 with its own golden.json, edited by `edit` (a tampered copy)."""
    version = repo / "lenet5" / "2"
    shutil.copytree(repo / "lenet5" / "1", version)
    write_golden(version, backend=golden_backend, edit=edit)
    return version


def _nudge_probability(document):
    document["outputs"][1]["probabilities"][3][4] += 0.25


def _failures(caplog):
    return [r.getMessage() for r in caplog.records if "failed to load" in r.getMessage()]


@pytest.mark.parametrize("backend", ["tf", "onnx"])
def test_an_exported_version_answers_its_own_golden_requests_on_both_backends(exported_repo, caplog, backend):
    repo, _ = exported_repo
    assert (repo / "lenet5" / "1" / "golden.json").is_file(), "kerasdrop export writes golden.json"
    manager = ModelManager(repo, backend=backend)
    with caplog.at_level(logging.INFO, logger="kerasdrop.serve"):
        manager.sync()
    assert manager.loaded_versions() == {"lenet5": [1]} and manager.readiness() == (True, "")
    assert any(
        f"lenet5 version 1 answered its golden requests within tolerance ({backend} backend)"
        in r.getMessage()
        for r in caplog.records
    )
    manager.stop()


@pytest.mark.parametrize("backend", ["tf", "onnx"])
def test_a_version_whose_answers_differ_from_its_golden_outputs_never_serves(golden_repo, caplog, backend):
    repo, model = golden_repo
    manager = ModelManager(repo, backend=backend)
    with caplog.at_level(logging.INFO, logger="kerasdrop.serve"):
        manager.sync()
        assert manager.readiness() == (True, "")
        tampered = _new_version(repo, edit=_nudge_probability)
        manager.sync()
    assert any("answered its golden requests within tolerance" in r.getMessage() for r in caplog.records)
    (failure,) = _failures(caplog)
    # Which request, which output, by how much.
    assert str(tampered) in failure and "GoldenMismatch" in failure
    assert "golden request 1 (serving_default): output 'probabilities': max |difference| 0.25" in failure
    assert manager.loaded_versions() == {"lenet5": [1]}, "the old version keeps serving"
    assert not manager.model_ready("lenet5", 2) and manager.model_ready("lenet5", 1)
    assert manager.readiness()[0], "the model still has a version serving"
    outputs = manager.run(manager.resolve("lenet5"), "serving_default", {"images": IMAGE})
    np.testing.assert_allclose(outputs["probabilities"], model(IMAGE, training=False), atol=1e-5)
    manager.stop()


def test_integer_outputs_must_match_exactly(golden_repo, caplog):
    repo, _ = golden_repo

    def shift_class(document):
        document["outputs"][0]["class_ids"][0] = (document["outputs"][0]["class_ids"][0] + 1) % 10

    manager = ModelManager(repo)
    manager.sync()
    _new_version(repo, edit=shift_class)
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        manager.sync()
    (failure,) = _failures(caplog)
    assert "golden request 0 (serving_default): output 'class_ids': 1 of 1 integer values differ" in failure
    assert manager.loaded_versions() == {"lenet5": [1]}
    manager.stop()


def test_weights_changed_after_export_never_serve_on_the_backend_that_serves(golden_repo, caplog):
    """model.onnx edited after export: the onnx backend refuses it, the tf backend (untouched
    SavedModel) serves it: the golden requests are replayed on the backend that will serve."""
    import onnx
    from onnx import numpy_helper

    repo, _ = golden_repo
    onnx_manager, tf_manager = ModelManager(repo, backend="onnx"), ModelManager(repo, backend="tf")
    onnx_manager.sync()
    tf_manager.sync()
    version = _new_version(repo)
    graph = onnx.load(str(version / "model.onnx"))
    weight = max(graph.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
    onnx.save(graph, str(version / "model.onnx"))
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        onnx_manager.sync()
        tf_manager.sync()
    (failure,) = _failures(caplog)
    assert "GoldenMismatch" in failure and "max |difference|" in failure
    assert onnx_manager.loaded_versions() == {"lenet5": [1]}
    assert tf_manager.loaded_versions() == {"lenet5": [2]}
    onnx_manager.stop()
    tf_manager.stop()


def test_a_backends_entry_overrides_the_golden_outputs_for_that_backend(golden_repo):
    repo, _ = golden_repo

    def onnx_entry_right_top_level_wrong(document):
        document["backends"] = {
            "onnx": {
                "outputs": json.loads(json.dumps(document["outputs"])),
                "tolerance": document["tolerance"],
            }
        }
        _nudge_probability(document)

    onnx_manager, tf_manager = ModelManager(repo, backend="onnx"), ModelManager(repo, backend="tf")
    onnx_manager.sync()
    tf_manager.sync()
    _new_version(repo, edit=onnx_entry_right_top_level_wrong, golden_backend="onnx")
    onnx_manager.sync()
    tf_manager.sync()
    assert onnx_manager.loaded_versions() == {"lenet5": [2]}
    assert tf_manager.loaded_versions() == {"lenet5": [1]}
    onnx_manager.stop()
    tf_manager.stop()


def test_not_ready_until_the_golden_requests_match_then_ready(exported_repo, tmp_path):
    source, _ = exported_repo
    repo = tmp_path / "export"
    (repo / "lenet5").mkdir(parents=True)
    version = repo / "lenet5" / "1"
    shutil.copytree(source / "lenet5" / "1", version)
    write_golden(version, edit=_nudge_probability)
    with running_server(repo=str(repo)) as server:
        assert rest(server, "GET", "/v2/health/ready")[0] == 400
        status, body = rest(server, "GET", "/v2/health/ready")
        assert body["ready"] is False and "lenet5" in body["reason"]
        assert rest(server, "GET", "/v2/models/lenet5/ready") == (400, {"name": "lenet5", "ready": False})
        assert rest(server, "GET", "/v1/models/lenet5")[0] == 404, "TF Serving's status: not AVAILABLE"
        status, body = rest(server, "POST", "/v2/models/lenet5/infer", {"inputs": []})
        assert status == 503 and "no version of it is ready" in body["error"]
        assert _grpc_infer_code(server) == "UNAVAILABLE"
        write_golden(version)  # the right answers: retried at once, since golden.json changed
        server.manager.sync()
        assert rest(server, "GET", "/v2/health/ready") == (200, {"ready": True})
        assert rest(server, "GET", "/v2/models/lenet5/versions/1/ready") == (
            200,
            {"name": "lenet5", "ready": True},
        )
        assert rest(server, "GET", "/v1/models/lenet5")[1]["model_version_status"][0]["state"] == "AVAILABLE"


def _grpc_infer_code(server):
    import grpc

    from kerasdrop.serving.protocols.oip.messages import (
        GRPCInferenceServiceStub,
        messages,
    )

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert not stub.ServerReady(messages.ServerReadyRequest()).ready
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(messages.ModelInferRequest(model_name="lenet5"))
    return raised.value.code().name


def test_with_zero_models_the_server_is_not_ready(tmp_path):
    (tmp_path / "empty").mkdir()
    manager = ModelManager(tmp_path / "empty")
    manager.sync()
    assert manager.readiness() == (False, "no model is loaded")


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "cannot be read as JSON"),
        (json.dumps({"format": 2}), "expected 'format': 1; received 2"),
        (
            json.dumps(
                {
                    "format": 1,
                    "requests": "../../elsewhere",
                    "outputs": [],
                    "tolerance": {"atol": 0, "rtol": 0},
                }
            ),
            "'requests' must name a file inside the version directory",
        ),
        (
            json.dumps({"format": 1, "outputs": [], "tolerance": {"atol": -1, "rtol": 0}}),
            "non-negative numbers",
        ),
        (
            json.dumps({"format": 1, "outputs": [], "tolerance": {"atol": 0, "rtol": 0}}),
            "holds 2 serving_default requests the backend answered; golden.json has outputs for 0",
        ),
    ],
)
def test_an_unusable_golden_json_keeps_the_version_out_with_a_reason(golden_repo, caplog, content, reason):
    repo, _ = golden_repo
    manager = ModelManager(repo)
    manager.sync()
    version = _new_version(repo)
    (version / "golden.json").write_text(content)
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        manager.sync()
    assert manager.loaded_versions() == {"lenet5": [1]}
    assert any(reason in failure for failure in _failures(caplog) if "/2" in failure), _failures(caplog)
    manager.stop()


def test_tf_serving_test_servables_without_golden_json_serve_as_before(shared_testdata):
    manager = ModelManager(None, models={"default": shared_testdata / "saved_model_half_plus_two_cpu"})
    manager.sync()
    assert manager.readiness() == (True, "")
    outputs = manager.run(manager.resolve("default"), "serving_default", {"x": [[2.0], [3.0]]})
    np.testing.assert_array_equal(outputs["y"], [[3.0], [3.5]])
    manager.stop()


def test_require_verification_refuses_versions_without_a_passing_report(golden_repo, shared_testdata, caplog):
    repo, _ = golden_repo
    failed = _new_version(repo)
    report = json.loads((failed / "verification.json").read_text())
    (failed / "verification.json").write_text(json.dumps(report | {"ok": False}))
    (repo / "half_plus_two").mkdir()
    shutil.copytree(
        shared_testdata / "saved_model_half_plus_two_cpu" / "00000123", repo / "half_plus_two" / "123"
    )
    strict = ModelManager(repo, require_verification=True, policy=VersionPolicy("all"))
    with caplog.at_level(logging.ERROR, logger="kerasdrop.serve"):
        strict.sync()
    assert strict.loaded_versions() == {"lenet5": [1]}
    failures = _failures(caplog)
    assert any(
        "VerificationRequired" in f and "half_plus_two" in f and "verification.json not found" in f
        for f in failures
    ), failures
    assert any("does not report a passing verification" in f and "ok=False" in f for f in failures), failures
    assert strict.readiness()[0] is False, "a model with no verified version keeps the server not ready"
    default = ModelManager(repo)  # off by default: any TF Serving repository serves
    default.sync()
    assert default.loaded_versions() == {"half_plus_two": [123], "lenet5": [2]}
    strict.stop()
    default.stop()


def test_a_draining_server_is_not_ready(shared_testdata):
    with running_server(models={"default": shared_testdata / "saved_model_half_plus_two_cpu"}) as server:
        assert server.manager.readiness() == (True, "")
        server.stop(grace=1)
        assert server.manager.readiness() == (False, "the server is draining (shutting down)")
