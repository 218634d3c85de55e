"""`weights="imagenet"` with no network: one line naming the file Keras wanted and where to put it, exit 2."""

import socket

import pytest


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Every host name resolves to a closed loopback port (as offline: the connection is refused), and
    Keras' cache is an empty directory, so nothing is found there either."""
    from keras.src.backend import config

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    resolve = socket.getaddrinfo

    def to_closed_port(host, *args, **kwargs):
        return resolve("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM)

    monkeypatch.setattr(socket, "getaddrinfo", to_closed_port)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    return tmp_path / "keras-home"


@pytest.mark.slow
def test_offline_imagenet_weights_fail_in_one_line_naming_the_file_and_where_it_goes(
    no_network, tmp_path, capsys
):
    from kerasdrop.cli import main

    code = main(
        [
            "train",
            "--no-recipe",
            "--model",
            "keras_app:ResNet50",
            "--dataset",
            "synthetic:32x32x3",
            "--set",
            'model.options={weights="imagenet"}',
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    (line,) = captured.err.strip().splitlines()
    assert "Traceback" not in captured.out + captured.err
    wanted = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert line.startswith(
        'kerasdrop train: error: keras_app:ResNet50 with weights="imagenet": Keras could not '
        f"download {wanted} from https://"
    ), line
    assert f"put the file at {no_network / 'models' / wanted}" in line
    assert not (tmp_path / "run").exists()


def test_other_build_errors_are_not_taken_for_a_failed_download():
    from kerasdrop.zoo import create_model

    with pytest.raises(ValueError, match="`input_shape`"):
        create_model("keras_app:ResNet50", num_classes=3, input_shape=(8, 8, 3), weights="imagenet")
