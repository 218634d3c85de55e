"""A valid ONNX model that ONNX Runtime cannot run is judged from its graph alone, and says so (exit 3)."""

import json

import numpy as np
import pytest

from kerasdrop.cli import main
from kerasdrop.verification import Report, verify


def onnx_runtime_cannot_load(path, *, random_op: bool = False):
    """images -> MatMul -> an op of another runtime's domain (valid ONNX; ONNX Runtime lacks it) [-> noise]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), "weight")
    nodes = [
        helper.make_node("MatMul", ["images", "weight"], ["logits"], name="matmul"),
        helper.make_node("FancySoftmax", ["logits"], ["scores"], name="fancy", domain="com.example.runtime"),
    ]
    current = "scores"
    if random_op:
        nodes += [
            helper.make_node("RandomUniformLike", [current], ["noise"], name="noise"),
            helper.make_node("Add", [current, "noise"], ["noisy"], name="add_noise"),
        ]
        current = "noisy"
    nodes.append(helper.make_node("Identity", [current], ["probabilities"], name="out"))
    graph = helper.make_graph(
        nodes,
        "other_runtime",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weight],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.runtime", 1)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)  # valid ONNX: the checker accepts ops of domains it does not know
    onnx.save(model, str(path))
    return path


def test_clean_graph_that_no_runtime_runs_is_graph_only_not_a_pass(tmp_path, capsys):
    path = onnx_runtime_cannot_load(tmp_path / "model.onnx")
    report = verify(path)
    assert report.verdict == "graph-only" and not report.ok and not report.errors
    assert report.exit_code == 3
    (not_run,) = report.not_run
    assert not_run["artefact"] == str(path) and "ONNX Runtime" in not_run["reason"]
    assert any("judged from its graph alone" in f.message for f in report.findings if f.severity == "warning")
    assert main(["verify", str(path)]) == 3
    assert "GRAPH ONLY" in capsys.readouterr().out
    assert main(["verify", str(path), "--json"]) == 3
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "graph-only" and printed["not_run"][0]["artefact"] == str(path)
    assert Report.from_dict(printed).verdict == "graph-only"


def test_broken_graph_that_no_runtime_runs_fails_and_says_it_was_not_run(tmp_path, capsys):
    path = onnx_runtime_cannot_load(tmp_path / "model.onnx", random_op=True)
    report = verify(path)
    assert report.verdict == "fail" and report.exit_code == 1
    assert any("random op RandomUniformLike" in f.message for f in report.errors)
    assert report.not_run and any("not run" in f.message for f in report.findings)
    assert main(["verify", str(path)]) == 1


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all"])
def test_unreadable_onnx_is_still_unusable_input(tmp_path, content, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert main(["verify", str(path)]) == 2


def test_verify_help_documents_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for code in ("Exit 0", "1: findings", "2: unusable input", "3: graph only"):
        assert code in text
