"""A candidate's time limit inside the process: SIGALRM raises :class:`Timeout` in the code running.

``Timeout`` is a ``BaseException``: a stage that turns its own errors into rows (``except Exception``
-> ``compile_error``) must not turn a timeout into one. Deadlines nest: an enclosing one that would
fire first (e.g. the layer job's alarm) is left to fire; otherwise ours is armed and the enclosing
timer is re-armed with what remains of it when ours ends. Off the main thread Python delivers no
signal, so no deadline is armed there (the caller's own limit, e.g. the driver killing a worker
past its timeout, still holds).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time


class Timeout(BaseException):
    """Raised in the running code when a :func:`deadline` expires."""


def _raise_timeout(signum, frame):
    raise Timeout()


@contextlib.contextmanager
def deadline(timeout_s: float | None):
    """Raise :class:`Timeout` inside the block once ``timeout_s`` seconds have passed (None or 0: no limit)."""
    if not timeout_s or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_left <= timeout_s:          # the enclosing deadline fires first: it decides
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        # A pending alarm may be delivered right after the disarm: the nested finally still puts
        # the caller's handler and timer back.
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
            if outer_left > 0:       # the enclosing timer still runs, with the time it had left
                signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3))
