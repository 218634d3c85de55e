"""The parser behind bench/train_throughput.py's per-primitive table, on lines oneDNN 3.7 printed
for simple_cnn's training step here (ONEDNN_VERBOSE=1, ONEDNN_VERBOSE_TIMESTAMP=1;
onednn_verbose_sample.txt, whose last line has no timestamp)."""

import importlib.util
import pathlib
import sys

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "_support" / "onednn_verbose.py"
_SPEC = importlib.util.spec_from_file_location("onednn_verbose", _PATH)
onednn_verbose = sys.modules["onednn_verbose"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(onednn_verbose)

LINES = (pathlib.Path(__file__).with_name("onednn_verbose_sample.txt")).read_text().splitlines()


def test_exec_lines_are_parsed_and_lines_without_a_timestamp_or_exec_are_skipped():
    primitives = onednn_verbose.parse(LINES)
    assert [(p.kind, p.pass_) for p in primitives] == [
        ("convolution", "forward_training"),
        ("convolution", "backward_weights"),
        ("gemm_api", "undef"),
        ("pooling", "backward_data"),
        ("inner_product", "forward_training"),
    ]
    assert primitives[0].timestamp_ms == pytest.approx(1796583956281.686)
    assert primitives[0].milliseconds == pytest.approx(1.28003)
    assert primitives[1].implementation == "jit:avx512_core"


def test_flops_and_bytes_follow_the_problem_sizes():
    conv1, conv2, gemm, pooling, dense = onednn_verbose.parse(LINES)
    assert onednn_verbose.flops(conv1) == 2 * 128 * 26 * 26 * 3 * 3 * 1 * 32
    assert (
        onednn_verbose.flops(conv2) == 2 * 128 * 11 * 11 * 3 * 3 * 32 * 64
    )  # the weight gradient: as forward
    assert onednn_verbose.flops(gemm) == 2 * 1600 * 128 * 128
    assert onednn_verbose.flops(dense) == 2 * 128 * 1600 * 128
    assert onednn_verbose.flops(pooling) == 0  # no GEMM FLOPs counted
    assert onednn_verbose.minimum_bytes(conv1) == 4 * (128 * (28 * 28 * 1 + 26 * 26 * 32) + 3 * 3 * 1 * 32)
    # One input channel: a few FLOPs per byte; 32 input channels: ~20x as many.
    assert onednn_verbose.arithmetic_intensity(conv1) == pytest.approx(4.3, abs=0.1)
    assert onednn_verbose.arithmetic_intensity(conv2) == pytest.approx(83.9, abs=0.1)


def test_grouped_and_rectangular_convolutions():
    line = (
        "onednn_verbose,v1,1.0,primitive,exec,cpu,convolution,jit:avx2,forward_training,src dst,,"
        "alg:convolution_direct,g4mb2_ic8oc16_ih10oh8kh3sh1dh0ph0_iw12ow10kw3sw1dw0pw0,0.5"
    )
    (primitive,) = onednn_verbose.parse([line])
    assert onednn_verbose.shape(primitive)["kernel"] == (3, 3, 2, 16)
    assert onednn_verbose.flops(primitive) == 2 * 2 * 8 * 10 * 3 * 3 * 2 * 16
