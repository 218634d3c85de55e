"""Ctrl-C (SIGINT) and SIGTERM during training, both raised as `Interrupted`, never inside an epoch's record.

An orchestrator stops a job with SIGTERM, whose default ends the process with nothing written; here it
is handled as Ctrl-C is. While an epoch's files are written (`hold` ... `release`), a signal waits, so
the epoch is either recorded whole (backup, history, best.keras) or not at all.

Inside `model.fit` (`deferred`), a signal is not raised where it lands either: a Python signal
handler runs at whatever bytecode the main thread reaches next, which inside fit is often
TensorFlow's own Python (an epoch's tf.data iterator being made or torn down). A CI run once saw
SIGTERM end training in glibc's "free(): invalid next size" (SIGABRT) before the interrupted line was
printed, which an exception raised there would explain (not reproduced).
It is raised at the next of Keras' callback hooks instead (`raise_pending`: after each step, each
validation step, each epoch's start), where an exception is an ordinary one for fit; a second signal
while one waits is raised at once, for a fit that never reaches a hook.
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


_pending: list[int] = []  # a signal received while held or deferred, raised at `release` / `raise_pending`
_held = threading.Event()
_deferred = threading.Event()


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
    raise_pending()


@contextlib.contextmanager
def deferred():
    """Within the block (a `model.fit`), a signal waits for `raise_pending` (or `release`); one still
    waiting when the block ends is raised then."""
    _deferred.set()
    try:
        yield
    finally:
        _deferred.clear()
    raise_pending()


def raise_pending() -> None:
    """Raises `Interrupted` for a signal that waits, unless an epoch's record holds it."""
    if _pending and not _held.is_set():
        number = _pending.pop()
        _pending.clear()
        raise Interrupted(number)


def _raise_or_hold(number, frame) -> None:
    if _held.is_set() or (_deferred.is_set() and not _pending):
        _pending.append(number)
        return
    _pending.clear()
    raise Interrupted(number)
