"""The server's listening ports: claimed by one `kerasdrop serve`, shared only by its own workers.

A port is claimed by binding it WITHOUT SO_REUSEPORT, which fails while anything listens on it (a
second kerasdrop's REST claim or gRPC listeners included). Only then is SO_REUSEPORT set on the
bound socket, so that the server's own per-worker sockets (`join_port`) can bind the same port; the
kernel then spreads new connections over the listening ones by a hash of their addresses. (A
foreign program of the same user that sets SO_REUSEPORT itself could still join: the kernel allows
that for one user. So could a second server whose claim binds before anything of this one listens,
since claims set SO_REUSEADDR: microseconds for REST, whose claim listens at once; the model load
for gRPC, which listens once the models are loaded.)
"""

from __future__ import annotations

import errno
import socket

from kerasdrop.errors import KerasdropError


class PortInUseError(KerasdropError, OSError):
    """A port another process (or server) already listens on; `kerasdrop serve` exits 2 naming it."""


def _tcp_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP, and
    # with Nagle on, the body write waits for the client's delayed ACK of the headers: 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT
    return sock


def _bind(sock: socket.socket | None, address: tuple, protocol: str, flag: str) -> socket.socket:
    """`sock` (a new one when None) bound to `address`, or PortInUseError saying why not."""
    host, port = address[:2]
    try:
        sock = _tcp_socket(host) if sock is None else sock
        sock.bind(address)
        return sock
    except OSError as error:
        if sock is not None:
            sock.close()
        if error.errno == errno.EADDRINUSE:
            message = f"{protocol} port {port} on {host} is already in use; choose another with {flag}"
        elif error.errno == errno.EACCES:  # a port below 1024 without the privilege
            message = f"{protocol} port {port} on {host} cannot be bound ({error.strerror}); choose another with {flag}"
        else:  # an address this machine does not have, a host name that does not resolve
            message = f"Cannot listen for {protocol} on {host}:{port}: {error.strerror}; check --host"
        raise PortInUseError(message) from None


def check_ports_free(host: str, ports: list[tuple[int, str, str]]) -> None:
    """Binds and releases each `(port, protocol, flag)` (0: skipped) at once, before anything slow (TensorFlow's
    import, the model load), so a port in use is known in a fraction of a second, every taken one named
    in one error. The claims made later stay the authority: a port taken in between is still caught there."""
    problems = []
    for port, protocol, flag in ports:
        if port == 0:
            continue
        try:
            _bind(None, (host, port), protocol, flag).close()
        except PortInUseError as error:
            problems.append(str(error))
    if problems:
        raise PortInUseError("; ".join(problems))


def claim_port(host: str, port: int, protocol: str, flag: str, *, shared: bool) -> socket.socket:
    """A socket bound to `port` (0: any free one) that no other server can bind while it is open;
    with `shared`, this server's own `join_port` sockets can. Not listening yet.

    `protocol` and `flag` name the port in the error: "REST port 8501 on 127.0.0.1 is already in
    use; choose another with --rest-port".
    """
    sock = _bind(None, (host, port), protocol, flag)  # (an IPv6 host on a kernel without IPv6: check --host)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def join_port(claim: socket.socket, protocol: str, flag: str) -> socket.socket:
    """Another socket bound to the port of `claim` (a shared claim_port), for another worker. Not
    listening: it takes no connection until its worker listens on it."""
    address = claim.getsockname()  # the whole address: an IPv6 one keeps its scope
    sock = _tcp_socket(address[0])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    _bind(sock, address, protocol, flag)
    return sock
