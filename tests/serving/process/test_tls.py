"""TLS and mutual TLS on both ports (--ssl-config-file, TF Serving's SSLConfig), with certificates made here."""

import datetime
import http.client
import ipaddress
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys

import numpy as np
import pytest

from tests.ports import free_port
from tests.serving.conftest import running_server

# --- a private CA, a server certificate for localhost/127.0.0.1, client certificates ---------------------------


def _issue(name: str, issuer=None, *, ca: bool = False, usage=None):
    """`(key PEM, certificate PEM, key, certificate)`: EC P-256, signed by `issuer` ((key, cert)) or self-signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_cert = issuer if issuer else (key, None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        oid = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([oid]), critical=False)
    if usage == "server":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), key, cert


def ssl_config_text(key: str = "", cert: str = "", ca: str = "", client_verify: bool = False) -> str:
    """An SSLConfig text proto written with TF Serving's message (configs.py), PEMs inline."""
    from google.protobuf import text_format

    from kerasdrop.serving.models.configs import _messages

    message = _messages()["SSLConfig"](
        server_key=key, server_cert=cert, custom_ca=ca, client_verify=client_verify
    )
    return text_format.MessageToString(message)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca_key_pem, ca_pem, ca_key, ca_cert = _issue("kerasdrop test CA", ca=True)
    server_key, server_cert, *_ = _issue("localhost", (ca_key, ca_cert), usage="server")
    client_key, client_cert, *_ = _issue("client", (ca_key, ca_cert), usage="client")
    _, _, rogue_ca_key, rogue_ca = _issue("another CA", ca=True)
    rogue_key, rogue_cert, *_ = _issue("intruder", (rogue_ca_key, rogue_ca), usage="client")
    files = {
        "ca.crt": ca_pem,
        "client.crt": client_cert,
        "client.key": client_key,
        "rogue.crt": rogue_cert,
        "rogue.key": rogue_key,
        "tls.config": ssl_config_text(server_key, server_cert),
        "mtls.config": ssl_config_text(server_key, server_cert, ca_pem, client_verify=True),
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return {
        "dir": directory,
        "server_key": server_key,
        "server_cert": server_cert,
        "ca": ca_pem,
        **{name: str(directory / name) for name in files},
    }


# --- clients --------------------------------------------------------------------------------------------------


def _predict_request(model: str = "lenet5"):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.ones((1, 8, 8, 1), "float32")))
    return request


def grpc_predict(port: int, pki=None, client: str | None = None):
    """Predict over a fresh connection: plaintext without `pki`, else TLS trusting the CA, presenting
    `client` ("client" or "rogue") when given. Returns the gRPC status code name."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    options = [("grpc.use_local_subchannel_pool", 1)]  # a new connection per call, not one shared by channels
    if pki is None:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    else:
        read = lambda name: pathlib.Path(pki[name]).read_bytes()  # noqa: E731
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read("ca.crt"),
            private_key=read(f"{client}.key") if client else None,
            certificate_chain=read(f"{client}.crt") if client else None,
        )
        channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options)
    with channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _predict_request(), timeout=10
            )
        except grpc.RpcError as error:
            return error.code().name
    assert response.outputs["probabilities"].tensor_shape.dim[1].size == 10
    return "OK"


def rest_predict(port: int, pki=None, client: str | None = None):
    """REST predict over a fresh connection: `(status, body)` or `("refused", the error)`."""
    import json

    body = json.dumps({"instances": np.ones((1, 8, 8, 1)).tolist()})
    if pki is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        context = ssl.create_default_context(cafile=pki["ca.crt"])
        if client:
            context.load_cert_chain(pki[f"{client}.crt"], pki[f"{client}.key"])
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request("POST", "/v1/models/lenet5:predict", body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    except (OSError, http.client.HTTPException) as error:  # ssl.SSLError is an OSError
        return "refused", error
    finally:
        connection.close()


# --- the config file ------------------------------------------------------------------------------------------


def test_ssl_config_is_tf_servings_message():
    from kerasdrop.serving.models.configs import _messages

    fields = {field.name: (field.number, field.type) for field in _messages()["SSLConfig"].DESCRIPTOR.fields}
    # tensorflow_serving/config/ssl_config.proto: string server_key = 1; server_cert = 2; custom_ca = 3;
    # bool client_verify = 4
    assert fields == {
        "server_key": (1, 9),
        "server_cert": (2, 9),
        "custom_ca": (3, 9),
        "client_verify": (4, 8),
    }
    assert _messages()["SSLConfig"].DESCRIPTOR.full_name == "tensorflow.serving.SSLConfig"


def test_a_hand_written_config_with_one_string_per_pem_line_parses(pki, tmp_path):
    """The form docs/tls.md shows: adjacent string literals are one string in protobuf's text format."""
    from kerasdrop.serving.process.tls import load_ssl_config

    def literal(pem: str) -> str:
        return "\n".join(f'  "{line}\\n"' for line in pem.strip().splitlines())

    (tmp_path / "ssl.config").write_text(
        f"server_key:\n{literal(pki['server_key'])}\nserver_cert:\n"
        f"{literal(pki['server_cert'])}\ncustom_ca:\n{literal(pki['ca'])}\n"
        "client_verify: true\n"
    )
    tls = load_ssl_config(tmp_path / "ssl.config")
    assert (
        tls.server_cert.strip() == pki["server_cert"].strip()
        and tls.client_verify
        and tls.mode == "mutual TLS"
    )
    assert "PRIVATE KEY" not in repr(tls), "the key never shows in a log line or traceback"


def test_the_tls_pages_openssl_recipe_makes_a_mutual_tls_config(tmp_path):
    """docs/tls.md's bash block that makes the CA, the certificates and ssl.config, run as written."""
    import re
    import shutil

    from kerasdrop.serving.process.tls import load_ssl_config

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    page = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "tls.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", page, flags=re.S)
    (recipe,) = [block for block in blocks if "openssl req -x509" in block]
    subprocess.run(["bash", "-e", "-c", recipe], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "ssl.config").stat().st_mode & 0o777 == 0o600
    tls = load_ssl_config(tmp_path / "ssl.config")
    assert tls.mode == "mutual TLS" and tls.custom_ca.strip() == (tmp_path / "ca.crt").read_text().strip()
    context = ssl.create_default_context(cafile=tmp_path / "ca.crt")  # the client side loads too
    context.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")


def test_pem_files_are_private_and_removed(pki):
    from kerasdrop.serving.process.tls import load_ssl_config, pem_files

    with pem_files(load_ssl_config(pki["mtls.config"])) as options:
        directory = pathlib.Path(options["ssl_keyfile"]).parent
        assert directory.stat().st_mode & 0o777 == 0o700
        assert {path.stat().st_mode & 0o777 for path in directory.iterdir()} == {0o600}
        assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED and os.path.isfile(options["ssl_ca_certs"])
    assert not directory.exists()


def _bad_configs(pki, tmp_path):
    _, other_cert, *_ = _issue("other")
    return {
        "missing": (str(tmp_path / "nope.config"), "no such file"),
        "unparseable": ("server_key: 'unterminated\n", "Expected an SSLConfig text proto"),
        "unknown field": ('server_crt: "x"\n', 'no field named "server_crt"'),
        "no certificate": (ssl_config_text(pki["server_key"]), "without server_cert"),
        "key of another certificate": (
            ssl_config_text(pki["server_key"], other_cert),
            "Expected server_key to be the private key of server_cert",
        ),
        "client_verify without custom_ca": (
            ssl_config_text(pki["server_key"], pki["server_cert"], client_verify=True),
            "Expected custom_ca (the CA that signs client certificates)",
        ),
        "not PEM": (
            ssl_config_text("not a key", "not a certificate"),
            "Expected server_key and server_cert as PEM",
        ),
        "custom_ca not PEM": (
            ssl_config_text(pki["server_key"], pki["server_cert"], "not a CA", client_verify=True),
            "Expected custom_ca as PEM certificates",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "unparseable",
        "unknown field",
        "no certificate",
        "key of another certificate",
        "client_verify without custom_ca",
        "not PEM",
        "custom_ca not PEM",
    ],
)
def test_a_bad_ssl_config_is_one_line_and_exit_2_before_anything_listens(pki, tmp_path, capsys, case):
    from kerasdrop.cli import main

    text, expected = _bad_configs(pki, tmp_path)[case]
    path = text if case == "missing" else tmp_path / "ssl.config"
    if case != "missing":
        path.write_text(text)
    rest_port, grpc_port = free_port(), free_port()
    code = main(
        [
            "serve",
            "--repo",
            str(tmp_path),
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
            "--ssl-config-file",
            str(path),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("kerasdrop serve: error: Invalid value received for --ssl-config-file.")
    assert expected in error and str(path) in error and error.count("\n") == 1, error
    for port in (rest_port, grpc_port):  # nothing was left listening
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_an_unreadable_ssl_config_is_one_line_not_a_traceback(pki, monkeypatch):
    from kerasdrop.serving.models import configs
    from kerasdrop.serving.process.tls import TlsConfigError, load_ssl_config

    def denied(path, kind):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(configs, "parse_text", denied)  # (tests run as root here, who may read any file)
    with pytest.raises(
        TlsConfigError, match=r"Expected a readable SSLConfig file\. Received: .*\(Permission denied\)"
    ):
        load_ssl_config(pki["tls.config"])


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--plain-rest"], "Expected it with --ssl-config-file"),
        (
            ["--plain-rest", "--ssl-config-file", "T", "--rest-ssl-config-file", "T"],
            "Expected it without --rest-ssl-config-file",
        ),
    ],
)
def test_plain_rest_misused_is_exit_2(pki, tmp_path, capsys, flags, expected):
    from kerasdrop.cli import main

    flags = [pki["tls.config"] if flag == "T" else flag for flag in flags]
    assert main(["serve", "--repo", str(tmp_path), *flags]) == 2
    assert f"Invalid value received for --plain-rest. {expected}" in capsys.readouterr().err


# --- a server with TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(exported_repo, pki):
    with running_server(repo=str(exported_repo[0]), ssl_config_file=pki["tls.config"]) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(exported_repo, pki):
    with running_server(repo=str(exported_repo[0]), ssl_config_file=pki["mtls.config"]) as server:
        yield server


def test_grpc_with_tls_answers_a_client_that_trusts_the_ca_and_refuses_plaintext(tls_server, pki):
    assert grpc_predict(tls_server.grpc_port, pki) == "OK"
    assert grpc_predict(tls_server.grpc_port) == "UNAVAILABLE"


def test_rest_with_tls_answers_https_and_refuses_plain_http(tls_server, pki):
    status, body = rest_predict(tls_server.rest_port, pki)
    assert status == 200 and len(body["predictions"][0]["probabilities"]) == 10
    status, error = rest_predict(tls_server.rest_port)
    assert status == "refused", "a plain HTTP request must not be answered on the TLS port"


def test_mutual_tls_needs_a_client_certificate_signed_by_custom_ca(mtls_server, pki):
    assert grpc_predict(mtls_server.grpc_port, pki, client="client") == "OK"
    assert grpc_predict(mtls_server.grpc_port, pki) == "UNAVAILABLE"
    assert grpc_predict(mtls_server.grpc_port, pki, client="rogue") == "UNAVAILABLE"
    assert rest_predict(mtls_server.rest_port, pki, client="client")[0] == 200
    assert rest_predict(mtls_server.rest_port, pki)[0] == "refused"
    assert rest_predict(mtls_server.rest_port, pki, client="rogue")[0] == "refused"


def test_plain_rest_keeps_rest_plaintext_while_grpc_has_tls(exported_repo, pki):
    with running_server(
        repo=str(exported_repo[0]), ssl_config_file=pki["mtls.config"], plain_rest=True
    ) as server:
        assert rest_predict(server.rest_port)[0] == 200
        assert grpc_predict(server.grpc_port) == "UNAVAILABLE"
        assert grpc_predict(server.grpc_port, pki, client="client") == "OK"


def test_rest_can_have_its_own_certificate(exported_repo, pki):
    """gRPC with mutual TLS, REST with TLS only (another SSLConfig)."""
    with running_server(
        repo=str(exported_repo[0]), ssl_config_file=pki["mtls.config"], rest_ssl_config_file=pki["tls.config"]
    ) as server:
        assert rest_predict(server.rest_port, pki)[0] == 200
        assert grpc_predict(server.grpc_port, pki) == "UNAVAILABLE"


@pytest.mark.parametrize("scheme", ["https", "grpcs"])
def test_kerasdrop_predict_over_mutual_tls(mtls_server, pki, tmp_path, capsys, scheme):
    from kerasdrop.cli import main

    np.save(tmp_path / "digit.npy", np.ones((8, 8, 1), "float32"))
    port = mtls_server.rest_port if scheme == "https" else mtls_server.grpc_port
    url = f"{scheme}://127.0.0.1:{port}"
    code = main(
        [
            "predict",
            "--url",
            url,
            "--model",
            "lenet5",
            "--ca-cert",
            pki["ca.crt"],
            "--client-cert",
            pki["client.crt"],
            "--client-key",
            pki["client.key"],
            str(tmp_path / "digit.npy"),
        ]
    )
    assert code == 0 and "digit.npy: class " in capsys.readouterr().out
    code = main(
        [
            "predict",
            "--url",
            url,
            "--model",
            "lenet5",
            "--ca-cert",
            pki["ca.crt"],
            str(tmp_path / "digit.npy"),
        ]
    )
    assert code == 1, "without a client certificate the server refuses"
    if scheme == "https":  # TLS 1.3 refuses after the handshake: a hang-up, which the hint explains
        assert "(if the server verifies clients: --client-cert and --client-key)" in capsys.readouterr().err


def test_predict_refuses_tls_files_with_a_plaintext_url(pki, tmp_path, capsys):
    from kerasdrop.cli import main

    assert (
        main(["predict", "--url", "http://127.0.0.1:1", "--model", "m", "--ca-cert", pki["ca.crt"], "x.npy"])
        == 2
    )
    assert "Expected https:// or grpcs://" in capsys.readouterr().err
    assert (
        main(["predict", "--url", "https://127.0.0.1:1", "--model", "m", "--ca-cert", "nope.pem", "x.npy"])
        == 2
    )
    assert (
        "Invalid value received for --ca-cert. Expected a PEM file. Received: nope.pem"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_serve_with_workers_has_mutual_tls_on_both_ports_in_every_worker(exported_repo, pki, tmp_path):
    """A real `kerasdrop serve --workers 2`: the start line says mutual TLS; 16 fresh connections a
    port (the kernel spreads them over both workers by hash) all need a client certificate; the
    workers' command lines carry the config's path, never a key; no PEM file is left on disk."""
    rest_port, grpc_port = free_port(), free_port()
    import shutil
    import tempfile

    temp = pathlib.Path(
        tempfile.mkdtemp(prefix="kd-tls-test-")
    )  # short: the workers' Unix sockets go under it
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kerasdrop.cli",
            "serve",
            "--repo",
            str(exported_repo[0]),
            "--rest-port",
            str(rest_port),
            "--grpc-port",
            str(grpc_port),
            "--workers",
            "2",
            "--poll-seconds",
            "0",
            "--ssl-config-file",
            pki["mtls.config"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        line = server.stdout.readline()  # printed once every worker serves
        assert (
            f"REST https://127.0.0.1:{rest_port} (mutual TLS)  gRPC 127.0.0.1:{grpc_port} (mutual TLS)"
            in line
        )
        workers = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) == 1  # the server itself is the first of the two
        command_line = pathlib.Path(f"/proc/{workers[0]}/cmdline").read_bytes().decode()
        assert pki["mtls.config"] in command_line and "PRIVATE KEY" not in command_line
        assert not list(temp.glob("kerasdrop-tls-*")), "the PEM files are removed once uvicorn has read them"
        for _ in range(16):
            assert grpc_predict(grpc_port, pki, client="client") == "OK"
            assert grpc_predict(grpc_port, pki) == "UNAVAILABLE"
            assert grpc_predict(grpc_port) == "UNAVAILABLE"
            assert rest_predict(rest_port, pki, client="client")[0] == 200
            assert rest_predict(rest_port, pki)[0] == "refused"
            assert rest_predict(rest_port)[0] == "refused"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
    assert code == 0
