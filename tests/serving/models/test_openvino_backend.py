"""`kerasdrop serve --backend openvino`: model.xml when the version has one, else model.onnx read by
OpenVINO, in float32; the same answers as ONNX Runtime within the verifier's tolerance, bad input a
400, a version without either file refused with the way to export one."""

import shutil

import numpy as np
import pytest

from kerasdrop.layout import ONNX_FILE
from kerasdrop.serving.errors import ServingError
from kerasdrop.serving.models.backends import OnnxBackend, OpenVinoBackend, load_backend
from kerasdrop.verification.numerical import TOLERANCE
from tests.serving.conftest import exported_repo, rest, running_server  # noqa: F401 (a fixture)

pytest.importorskip("openvino")


def test_openvino_reads_model_onnx_and_answers_as_onnx_runtime_does(exported_repo):  # noqa: F811
    repo, _ = exported_repo
    version = repo / "lenet5" / "1"
    backend = load_backend("openvino", version)
    assert isinstance(backend, OpenVinoBackend) and backend.signature_names() == ["serving_default"]
    assert "serving_default" in backend.signature_defs
    images = np.random.default_rng(0).uniform(0, 16, (5, 8, 8, 1)).astype("float32")
    expected = OnnxBackend(version).run("serving_default", {"images": images})
    answer = backend.run("serving_default", {"images": images})
    assert set(answer) == set(expected)
    np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], **TOLERANCE)
    np.testing.assert_array_equal(answer["class_ids"], expected["class_ids"])
    with pytest.raises(ServingError) as refused:
        backend.run("serving_default", {"images": np.zeros((2, 3), "float32")})
    assert refused.value.code == "INVALID_ARGUMENT"


def test_a_version_without_model_xml_or_model_onnx_is_refused(exported_repo, tmp_path):  # noqa: F811
    repo, _ = exported_repo
    version = tmp_path / "1"
    shutil.copytree(repo / "lenet5" / "1", version)
    (version / ONNX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="neither model.xml nor model.onnx in"):
        OpenVinoBackend(version)


def test_serve_backend_openvino_answers_rest(exported_repo):  # noqa: F811
    repo, _ = exported_repo
    images = np.random.default_rng(1).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    expected = OnnxBackend(repo / "lenet5" / "1").run("serving_default", {"images": images})
    with running_server(repo=str(repo), backend="openvino") as server:
        status, body = rest(server, "POST", "/v1/models/lenet5:predict", {"instances": images.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(
        [row["probabilities"] for row in body["predictions"]], expected["probabilities"], **TOLERANCE
    )
