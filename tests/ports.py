"""A free loopback port for a server a test starts in a subprocess (one that cannot take port 0 and
report back). The kernel hands out the port and the probe releases it; the server binds it moments
later, so another process could take it in between: rare, and the server then exits naming it."""

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
