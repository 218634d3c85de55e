"""A TFDS data set's first-use download, and a failed download explained in one line.

TFDS downloads into `<data_dir>/downloads/` and prepares into an `incomplete.*` directory that is
renamed to `<name>/<version>/` only when complete, so an interrupted run never leaves files that
the next run takes for a prepared data set (tests/data/test_tfds_download.py kills one to check).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pathlib
import sys

from kerasdrop.errors import KerasdropError

# TFDS retries a failed connection 10 times with exponential backoff: measured here, a refused
# connection was reported after 204 s of retry warnings. Three retries (0.4 + 0.8 s of backoff; the
# failing-download tests take 1.2 s) still ride out a dropped connection or a 5xx, and a machine
# without network hears it at once.
DOWNLOAD_RETRIES = 3
# Where TFDS fetches a prepared data set first (and mnist's files): if this machine cannot resolve or
# route to it, it is offline, which `check_can_download` tells in PROBE_SECONDS, before TensorFlow loads.
PROBE_HOST = "storage.googleapis.com"
PROBE_SECONDS = 1.5
_TIMEOUTS = ("ConnectTimeoutError", "ReadTimeoutError", "ConnectTimeout", "ReadTimeout", "Timeout")


class DatasetDownloadError(KerasdropError, OSError):
    """A TFDS data set could not be downloaded (no network, DNS, proxy, HTTP error)."""


def download_and_prepare(builder, name: str, data_dir: str | None) -> None:
    """Downloads and prepares `builder`'s data set as `tfds.load` does, with TFDS's progress bars.

    Raises:
        DatasetDownloadError: the download failed for a network reason, named in one line.
    """
    _silence_retry_warnings()
    if not (
        sys.stdout.isatty() and sys.stderr.isatty()
    ):  # a log or a pipe: no tqdm bars and their escape codes
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    try:
        with _fewer_retries():
            builder.download_and_prepare()
    except Exception as error:
        reason = network_failure_reason(error)
        if reason is None:
            raise  # not a network failure (a full disk, a bug): keep its own type and traceback
        raise DatasetDownloadError(download_failed_message(name, data_dir, reason)) from error


def check_can_download(name: str, data_dir: str | None) -> None:
    """Raises DatasetDownloadError at once (no TensorFlow import, <= 2 x PROBE_SECONDS) when the TFDS
    data set `name` (`mnist`, `mnist:train[:10%]`) is not prepared in `data_dir` and this machine has no
    DNS or no route to the internet.

    Anything else, a machine behind a proxy included, is left to the download itself to judge.
    """
    name = name.partition(":")[0].split("/")[0]
    prepared = pathlib.Path(default_data_dir(data_dir)).expanduser() / name
    if next(prepared.rglob("dataset_info.json"), None) is not None:
        return
    reason = _offline_reason()
    if reason is not None:
        raise DatasetDownloadError(download_failed_message(name, data_dir, reason))


def _offline_reason() -> str | None:
    """`DNS could not resolve ...` or `no route to ...` when PROBE_HOST cannot be reached; None if it can or
    the probe cannot tell (a proxy, a slow resolver)."""
    import socket
    import threading
    from urllib.request import getproxies

    if getproxies():
        return None
    found = {}

    def resolve():
        try:
            found["addresses"] = socket.getaddrinfo(PROBE_HOST, 443, type=socket.SOCK_STREAM)
        except OSError as error:  # socket.gaierror: no DNS, or the name does not resolve
            found["error"] = error

    resolver = threading.Thread(target=resolve, daemon=True)  # getaddrinfo takes no timeout of its own
    resolver.start()
    resolver.join(PROBE_SECONDS)
    if "error" in found:
        return f"DNS could not resolve {PROBE_HOST}"
    if "addresses" not in found:
        return None
    family, kind, proto, _, address = found["addresses"][0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.settimeout(PROBE_SECONDS)
            probe.connect(address)
    except OSError as error:
        if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to {PROBE_HOST}:443 (network unreachable)"
    return None


def default_data_dir(data_dir: str | None) -> str:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"


def download_failed_message(name: str, data_dir: str | None, reason: str) -> str:
    return (
        f"TFDS data set {name!r} is not prepared in {default_data_dir(data_dir)} and downloading it failed: "
        f"{reason}. If this machine has no internet, either pass --data-dir DIR (or set TFDS_DATA_DIR) with a copy "
        f"prepared elsewhere, or run `tfds build {name} --data_dir DIR` on a machine with internet and copy DIR here."
    )


def network_failure_reason(error: BaseException) -> str | None:
    """Why a download failed (no route, DNS, proxy, refused, timeout, TLS, HTTP status), or None
    when `error` is not a network failure. Reads the exception chain that requests/urllib3 build."""
    chain = _exception_chain(error)
    where = _address(chain)
    checks = (
        (
            _named(chain, "ProxyError"),
            f"the proxy {_proxy(where)} could not be reached or refused the connection",
        ),
        (
            _named(chain, "NameResolutionError")
            or any(isinstance(e, OSError) and type(e).__name__ == "gaierror" for e in chain),
            f"DNS could not resolve {where.split(':')[0]}",
        ),
        (any(isinstance(e, ConnectionRefusedError) for e in chain), f"the connection to {where} was refused"),
        (
            any(isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) for e in chain),
            f"no route to {where} (network unreachable)",
        ),
        # By exact type: urllib3 derives every failed connection (NewConnectionError) from ConnectTimeoutError.
        (
            any(type(e).__name__ in _TIMEOUTS or isinstance(e, TimeoutError) for e in chain),
            f"the connection to {where} timed out",
        ),
        (_named(chain, "SSLError"), f"TLS failed with {where}"),
    )
    for matched, reason in checks:
        if matched:
            return reason
    for link in chain:
        if type(link).__name__ == "DownloadError":  # TFDS's own: an HTTP status other than 200
            return str(link).rstrip(".")
        if _named([link], "ConnectionError", "RequestException", "HTTPError"):
            return f"{type(link).__name__} for {where}: {link}"
    return None


def _exception_chain(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        # urllib3's MaxRetryError keeps the last attempt's error in `.reason`, not as a cause.
        reason = getattr(error, "reason", None)
        wrapped = error.args[0] if error.args and isinstance(error.args[0], BaseException) else None
        error = (
            reason if isinstance(reason, BaseException) else (error.__cause__ or error.__context__ or wrapped)
        )
    return chain


def _named(chain, *names: str) -> bool:
    return any(cls.__name__ in names for link in chain for cls in type(link).__mro__)


def _address(chain) -> str:
    """`host:port` of the failed connection (the URL's, or the proxy's when a proxy was used)."""
    for link in chain:
        pool = getattr(link, "pool", None)
        if pool is not None and getattr(pool, "host", None):
            return f"{pool.host}:{pool.port}" if pool.port else pool.host
        connection = getattr(link, "conn", None)
        if connection is not None and getattr(connection, "host", None):
            return f"{connection.host}:{connection.port}"
    return "the download server"


def _proxy(where: str) -> str:
    from urllib.request import getproxies

    proxies = getproxies()
    return proxies.get("https") or proxies.get("http") or where


@contextlib.contextmanager
def _fewer_retries():
    # TFDS reads its module constant on every request and offers no setting for it. A process that
    # downloads with TFDS in another thread meanwhile gets the same 3 retries.
    from tensorflow_datasets.core.download import downloader

    saved = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = DOWNLOAD_RETRIES
    try:
        yield
    finally:
        downloader.MAX_RETRIES = saved


def _silence_retry_warnings() -> None:
    # urllib3 logs a warning per retry; the failure is reported once, with its reason, instead. Not
    # restored afterwards: TFDS's other download threads keep retrying after the first failure is
    # raised, and their warnings would follow the one-line error (seen here with a failing resolver).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
