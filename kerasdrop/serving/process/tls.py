"""TLS and mutual TLS for `kerasdrop serve`'s two ports, configured as TF Serving's `--ssl_config_file`:
an SSLConfig text proto (tensorflow_serving/config/ssl_config.proto) with the PEMs inline.

gRPC gets grpc.ssl_server_credentials as TF Serving builds them; REST gets the same certificate from
uvicorn, which reads files: the PEMs are written into a private directory only while uvicorn loads them.
`ServeConfig` (and so a worker's command line) carries the config files' paths, never their contents.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib

from kerasdrop.errors import KerasdropError


class TlsConfigError(KerasdropError, ValueError):
    """An ssl config file that cannot secure a port; the message names the flag and the file."""


@dataclasses.dataclass(frozen=True)
class ServerTls:
    """One SSLConfig, checked: the server's key and certificate (PEM) and, for mutual TLS, the CA that
    signs client certificates."""

    server_key: str = dataclasses.field(repr=False)  # a secret: never in a log line or traceback
    server_cert: str
    custom_ca: str
    client_verify: bool

    @property
    def mode(self) -> str:
        return "mutual TLS" if self.client_verify else "TLS"


def load_ssl_config(path: str | pathlib.Path, flag: str = "--ssl-config-file") -> ServerTls:
    """Reads and checks an SSLConfig file as TF Serving parses it (protobuf text format, an unknown
    field an error); the key must belong to the certificate, and client_verify needs custom_ca.

    Raises:
        TlsConfigError: in the project's template, one line naming `flag` and `path`.
    """
    from google.protobuf import text_format

    from kerasdrop.serving.models.configs import parse_text

    def refuse(expected: str, received: str):
        return TlsConfigError(f"Invalid value received for {flag}. Expected {expected}. Received: {received}")

    if not pathlib.Path(path).is_file():
        raise refuse(
            "an SSLConfig file (TF Serving's ssl_config.proto in text format)", f"{path} (no such file)"
        )
    try:
        message = parse_text(path, "SSLConfig")
    except (text_format.ParseError, UnicodeDecodeError) as error:
        detail = " ".join(str(error).split())  # one line, whatever the parser wrote
        raise refuse(
            "an SSLConfig text proto with server_key, server_cert, custom_ca, client_verify",
            f"{path}: {detail}",
        ) from None
    except OSError as error:  # unreadable (permissions): still one line, not a traceback
        raise refuse("a readable SSLConfig file", f"{path} ({error.strerror or error})") from None
    missing = [name for name in ("server_key", "server_cert") if not getattr(message, name).strip()]
    if missing:
        raise refuse("server_key and server_cert as PEM text", f"{path} without {' and '.join(missing)}")
    if message.client_verify and not message.custom_ca.strip():
        raise refuse(
            "custom_ca (the CA that signs client certificates) when client_verify is true",
            f"{path} with client_verify and no custom_ca",
        )
    tls = ServerTls(message.server_key, message.server_cert, message.custom_ca, message.client_verify)
    try:
        _check_with_openssl(tls)
    except _PemError as error:
        raise refuse(error.expected, f"{path} ({error.reason})") from None
    return tls


class _PemError(Exception):
    def __init__(self, expected: str, reason: str):
        super().__init__(reason)
        self.expected, self.reason = expected, reason


def _check_with_openssl(tls: ServerTls) -> None:
    """Loads the PEMs into an OpenSSL server context, as both ports will: a key that is not the
    certificate's, or text that is not PEM, fails here rather than in every handshake."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pem_files(tls) as files:
        try:
            context.load_cert_chain(files["ssl_certfile"], files["ssl_keyfile"])
        except ssl.SSLError as error:
            reason = error.reason or str(error)
            if "MISMATCH" in str(reason).upper():
                raise _PemError(
                    "server_key to be the private key of server_cert", "key values mismatch"
                ) from None
            raise _PemError("server_key and server_cert as PEM text", f"OpenSSL: {reason}") from None
    if tls.custom_ca.strip():
        try:
            context.load_verify_locations(cadata=tls.custom_ca)
        except ssl.SSLError as error:
            raise _PemError("custom_ca as PEM certificates", f"OpenSSL: {error.reason or error}") from None


@contextlib.contextmanager
def pem_files(tls: ServerTls):
    """Yields uvicorn's SSL options for `tls`, their PEM files in a new private directory (0700, files
    0600) that is removed on leaving, whatever happens."""
    import os
    import shutil
    import ssl
    import tempfile

    directory = tempfile.mkdtemp(prefix="kerasdrop-tls-")  # mkdtemp makes it 0700, readable by this user only
    try:

        def write(name: str, text: str) -> str:
            path = os.path.join(directory, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
            return path

        options = {
            "ssl_keyfile": write("server.key", tls.server_key),
            "ssl_certfile": write("server.crt", tls.server_cert),
        }
        if tls.client_verify:
            options |= {
                "ssl_ca_certs": write("custom_ca.crt", tls.custom_ca),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
        yield options
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def rest_ssl_config_file(config) -> str | None:
    """The SSLConfig file REST uses under `config` (a ServeConfig): its own, else gRPC's, none with plain_rest."""
    if config.plain_rest:
        return None
    return config.rest_ssl_config_file or config.ssl_config_file


def check_config(config) -> dict[str, ServerTls | None]:
    """Loads every ssl config file `config` names, before anything listens: `{"rest": ..., "grpc": ...}`,
    None for a plain port. Raises TlsConfigError."""
    if config.plain_rest and config.rest_ssl_config_file:
        raise TlsConfigError(
            "Invalid value received for --plain-rest. Expected it without --rest-ssl-config-file "
            "(REST is either plain or secured). Received: both"
        )
    if config.plain_rest and not config.ssl_config_file:
        raise TlsConfigError(
            "Invalid value received for --plain-rest. Expected it with --ssl-config-file (it keeps "
            "REST plain while gRPC is secured). Received: --plain-rest alone"
        )
    rest_file = rest_ssl_config_file(config)
    grpc = load_ssl_config(config.ssl_config_file) if config.ssl_config_file else None
    if rest_file is None:
        return {"rest": None, "grpc": grpc}
    if rest_file == config.ssl_config_file:
        return {"rest": grpc, "grpc": grpc}
    return {"rest": load_ssl_config(rest_file, "--rest-ssl-config-file"), "grpc": grpc}


def grpc_server_credentials(config):
    """grpc.ServerCredentials for `config.ssl_config_file`, as TF Serving builds them
    (BuildServerCredentialsFromSSLConfigFile); None serves gRPC in plaintext."""
    if not config.ssl_config_file:
        return None
    import grpc

    tls = load_ssl_config(config.ssl_config_file)
    return grpc.ssl_server_credentials(
        [(tls.server_key.encode(), tls.server_cert.encode())],
        root_certificates=tls.custom_ca.encode() if tls.client_verify else None,
        require_client_auth=tls.client_verify,
    )


@contextlib.contextmanager
def rest_ssl_options(config):
    """uvicorn.Config's SSL keyword arguments for REST under `config` ({} for plain HTTP); the files
    they name exist until the block ends, so load the uvicorn config inside it."""
    path = rest_ssl_config_file(config)
    if path is None:
        yield {}
        return
    flag = "--rest-ssl-config-file" if path == config.rest_ssl_config_file else "--ssl-config-file"
    with pem_files(load_ssl_config(path, flag)) as options:
        yield options


def describe(tls: ServerTls | None) -> str:
    """How the start line names a port's security: "TLS", "mutual TLS" or "plaintext"."""
    return tls.mode if tls is not None else "plaintext"
