"""A fresh clone has no ../shared beside it: the peer-conformance tests skip there, and fail under CI."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent

# Only the conftest-level behaviour is under test: the probe overrides the autouse seeding fixture so
# the child pytest never imports TensorFlow, and stays a second or two.
PROBE = """
import pytest

@pytest.fixture(autouse=True)
def _seeded():
    yield

def test_needs_tf_serving_testdata(shared_testdata):
    assert (shared_testdata / "saved_model_half_plus_two_cpu").is_dir()

def test_needs_them_too(shared_testdata):
    assert shared_testdata.is_dir()
"""


def _run_copied_suite(tmp_path, **environment):
    """Runs the real tests/conftest.py with the probe in a clone-like folder that has no ../shared."""
    clone = tmp_path / "clone"
    (clone / "tests").mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTS / "conftest.py", clone / "tests" / "conftest.py")
    (clone / "tests" / "test_probe.py").write_text(PROBE)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", "KERASDROP_TF_SERVING_TESTDATA", "PYTEST_ADDOPTS")
    }
    env.update(environment)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-ra",
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,
            "--rootdir",
            str(clone),
            str(clone / "tests"),
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _skip_lines(output):
    return [line for line in output.splitlines() if line.startswith("SKIPPED")]


def test_absent_testdata_is_skipped_with_a_one_line_reason_saying_how_to_get_it(tmp_path):
    result = _run_copied_suite(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    lines = _skip_lines(result.stdout)
    assert len(lines) == 2  # one line per test, the reason included: nothing wraps onto a second line
    for line in lines:
        assert str(tmp_path / "shared" / "testdata" / "tf_serving") in line
        assert "KERASDROP_TF_SERVING_TESTDATA" in line and line.endswith("github.com/tensorflow/serving")


def test_the_variable_names_where_the_testdata_is(tmp_path):
    nowhere = tmp_path / "nowhere"
    skipped = _run_copied_suite(tmp_path, KERASDROP_TF_SERVING_TESTDATA=str(nowhere))
    assert skipped.returncode == 0 and str(nowhere) in _skip_lines(skipped.stdout)[0]

    copy = tmp_path / "testdata"
    (copy / "saved_model_half_plus_two_cpu").mkdir(parents=True)
    found = _run_copied_suite(tmp_path, KERASDROP_TF_SERVING_TESTDATA=str(copy))
    assert found.returncode == 0, found.stdout + found.stderr
    assert "2 passed" in found.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_absent_testdata_fails_under_ci(tmp_path, ci):
    result = _run_copied_suite(tmp_path, CI=ci, KERASDROP_TF_SERVING_TESTDATA=str(tmp_path / "nowhere"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 errors" in result.stdout
    assert "CI=true" in result.stdout and "KERASDROP_TF_SERVING_TESTDATA" in result.stdout
