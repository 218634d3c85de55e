"""The first afternoon's messages: what a new user types gets a clear answer (issue 26, item 7)."""

import os
import pathlib
import subprocess
import sys
import time

import pytest

from kerasdrop.cli import build_parser, main


@pytest.mark.parametrize("text", ["8x8x1", "8,8,1", "8X8X1"])
def test_a_shape_is_taken_as_models_prints_it_and_as_a_list(text, capsys):
    assert build_parser().parse_args(["describe", "mlp", "--input-shape", text]).input_shape == (8, 8, 1)
    assert build_parser().parse_args(
        ["train", "--model", "mlp", "--image-size", text.rsplit(text[1], 1)[0]]
    ).image_size == (8, 8)


def test_a_malformed_shape_says_both_forms(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["describe", "mlp", "--input-shape", "8x8"])
    assert (
        "Expected H,W,C as positive integers, e.g. 32x32x3 or 32,32,3. Received: '8x8'"
        in capsys.readouterr().err
    )


def test_a_synthetic_shape_is_taken_in_both_forms():
    from kerasdrop.data.synthetic import parse_synthetic_options

    assert parse_synthetic_options("8x8x3:4") == parse_synthetic_options("8,8,3:4") == ((8, 8, 3), 4)


def test_a_misspelt_data_set_gets_did_you_mean():
    from kerasdrop.data.core import parse_dataset_spec

    with pytest.raises(ValueError, match=r"\(did you mean: digits\?\)\. Received: dataset='digit'"):
        parse_dataset_spec("digit")


def test_export_of_a_run_directory_names_the_keras_file_it_holds(tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"not read")
    (run / "best.keras").write_bytes(b"not read")
    assert main(["export", str(run), "--name", "x", "--repo", str(tmp_path / "export")]) == 2
    error = capsys.readouterr().err
    assert (
        f"Expected a .keras file; {run} is a directory; found {run / 'model.keras'}, {run / 'best.keras'}: "
        f"did you mean {run / 'model.keras'}?" in error
    )
    assert not (tmp_path / "export").exists()


def _model_folder(root: pathlib.Path) -> pathlib.Path:
    (root / "export" / "lenet5" / "1" / "variables").mkdir(parents=True)
    (root / "export" / "lenet5" / "1" / "saved_model.pb").write_bytes(b"")
    return root / "export" / "lenet5"


def test_serve_of_a_model_folder_suggests_the_right_commands_in_one_line(tmp_path, capsys):
    model_dir = _model_folder(tmp_path)
    for given in (model_dir, model_dir / "1"):
        assert main(["serve", "--repo", str(given), "--rest-port", "0", "--grpc-port", "0"]) == 2
        error = capsys.readouterr().err
        assert len(error.strip().splitlines()) == 1 and "skipping" not in error
        assert f"`kerasdrop serve --repo {model_dir.parent.absolute()}`" in error
        assert f"`kerasdrop serve --model_name lenet5 --model_base_path {model_dir.absolute()}`" in error


def test_tensorflow_model_servers_flags_are_taken_as_aliases(tmp_path):
    args = build_parser().parse_args(
        [
            "serve",
            "--port=9000",
            "--rest_api_port=9001",
            "--model_name=digits",
            f"--model_base_path={tmp_path}",
            "--enable_batching",
            "--file_system_poll_wait_seconds=5",
            "--ssl_config_file=ssl.config",
        ]
    )
    assert (
        args.grpc_port,
        args.rest_port,
        args.model_name,
        args.model_base_path,
        args.enable_batching,
        args.poll_seconds,
        args.ssl_config_file,
    ) == (9000, 9001, "digits", str(tmp_path), True, 5.0, "ssl.config")
    assert build_parser().parse_args(["serve", "--enable_batching=false"]).enable_batching is False
    assert build_parser().parse_args(["serve", "--model_config_file", "m.config"]).models_config == "m.config"


def test_model_name_and_base_path_serve_that_one_model(tmp_path):
    from kerasdrop.cli.serving import _models_to_serve

    model_dir = _model_folder(tmp_path)
    args = build_parser().parse_args(["serve", "--model_name", "digits", "--model_base_path", str(model_dir)])
    assert _models_to_serve(args) == (None, {"digits": model_dir.absolute()})
    args = build_parser().parse_args(["serve", "--model_base_path", str(model_dir)])
    assert _models_to_serve(args) == (None, {"default": model_dir.absolute()})  # TF Serving's default name


def test_model_name_without_a_base_path_is_refused(capsys):
    assert main(["serve", "--model_name", "digits"]) == 2
    assert "--model_name digits needs --model_base_path" in capsys.readouterr().err


def test_ports_in_use_are_both_named_before_tensorflow_is_imported(tmp_path):
    import socket

    taken = [socket.socket(), socket.socket()]
    for sock in taken:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
    rest_port, grpc_port = (sock.getsockname()[1] for sock in taken)
    (tmp_path / "export").mkdir()
    script = (
        "import sys, time; from kerasdrop.cli import main; started = time.monotonic(); "
        f"code = main(['serve', '--repo', {str(tmp_path / 'export')!r}, '--rest-port', '{rest_port}', "
        f"'--grpc-port', '{grpc_port}']); "
        "print(code, 'tensorflow' in sys.modules, round(time.monotonic() - started, 3))"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    for sock in taken:
        sock.close()
    code, imported, _ = result.stdout.split()
    assert (code, imported) == ("2", "False"), result.stderr
    assert f"REST port {rest_port} on 127.0.0.1 is already in use" in result.stderr
    assert f"gRPC port {grpc_port} on 127.0.0.1 is already in use" in result.stderr
    assert seconds < 10, (
        f"{seconds:.1f} s (a process start and no TensorFlow: well under 2 s on a quiet machine)"
    )


@pytest.fixture
def unresolvable_probe(monkeypatch):
    """The offline probe aimed at a name that never resolves (RFC 2606 `.invalid`), with no proxy set."""
    from kerasdrop.data import download

    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(download, "PROBE_HOST", "kerasdrop-offline-probe.invalid")
    return download


def test_an_offline_machine_hears_about_a_tfds_data_set_at_once(unresolvable_probe, tmp_path):
    started = time.monotonic()
    with pytest.raises(
        unresolvable_probe.DatasetDownloadError,
        match=r"TFDS data set 'mnist' is not prepared in .* DNS could not resolve kerasdrop-offline",
    ):
        unresolvable_probe.check_can_download("mnist", str(tmp_path))
    assert time.monotonic() - started < 2 * unresolvable_probe.PROBE_SECONDS + 0.5


def test_a_prepared_data_set_is_not_probed(unresolvable_probe, tmp_path):
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    unresolvable_probe.check_can_download("mnist:train[:10%]", str(tmp_path))


def test_train_offline_fails_in_one_line_before_tensorflow_loads(tmp_path):
    script = (
        "import sys; from kerasdrop.data import download; download.PROBE_HOST = 'kerasdrop-probe.invalid'; "
        "from kerasdrop.cli import main; "
        f"code = main(['train', '--model', 'mlp', '--dataset', 'mnist', '--data-dir', {str(tmp_path)!r}, "
        f"'--out', {str(tmp_path / 'run')!r}]); print(code, 'tensorflow' in sys.modules)"
    )
    environment = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert "\x1b" not in result.stderr and "DNS could not resolve kerasdrop-probe.invalid" in result.stderr


def test_no_progress_bars_when_the_output_is_not_a_terminal(unresolvable_probe, capsys):
    from tensorflow_datasets.core.utils import tqdm_utils

    class Refused:
        def download_and_prepare(self):
            raise ConnectionRefusedError("refused")

    try:
        tqdm_utils.enable_progress_bar()
        with pytest.raises(unresolvable_probe.DatasetDownloadError):
            unresolvable_probe.download_and_prepare(Refused(), "mnist", None)
        assert tqdm_utils._active is False
    finally:
        tqdm_utils.enable_progress_bar()
