"""Ctrl-C (SIGINT) and SIGTERM during training, both raised as `Interrupted`, never inside an epoch's record.

An orchestrator stops a job with SIGTERM, whose default ends the process with nothing written; here it
is handled as Ctrl-C is. While an epoch's files are written (`hold` ... `release`), a signal waits, so
the epoch is either recorded whole (backup, history, best.keras) or not at all.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM received while training; `signal_number` says which."""

    def __init__(self, signal_number: int):
        super().__init__(f"training interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number

    def __reduce__(self):  # re-raised across processes (a study's workers) by its number, not its message
        return type(self), (self.signal_number,)


_pending: list[int] = []  # a signal received while held, raised at `release`
_held = threading.Event()


@contextlib.contextmanager
def interrupts_raised():
    """Within the block (main thread only), SIGINT and SIGTERM raise `Interrupted`.

    A handler someone else installed is left alone, and so is an enclosing block's own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(number)
        if current in (signal.default_int_handler, signal.SIG_DFL):
            replaced[number] = current
            signal.signal(number, _raise_or_hold)
    try:
        yield
    finally:
        _held.clear()  # a block left by an exception between `hold` and `release` holds no more signals
        for number, handler in replaced.items():
            signal.signal(number, handler)
        if replaced:
            _pending.clear()


def hold() -> None:
    """Signals from now until `release` wait for it."""
    _held.set()


def release() -> None:
    """Ends `hold`; raises `Interrupted` if a signal came meanwhile."""
    _held.clear()
    if _pending:
        number = _pending.pop()
        _pending.clear()
        raise Interrupted(number)


def _raise_or_hold(number, frame) -> None:
    if _held.is_set():
        _pending.append(number)
        return
    raise Interrupted(number)
