"""A wall-clock limit around sympy work, so one pathological answer cannot stall the filter.

Usage:
    from distill.verify.guard import time_limit, TimeLimit
    try:
        with time_limit(0.5):
            sympy.simplify(expr)
    except TimeLimit:
        ...

Uses SIGALRM via ``setitimer`` (sub-second) in the main thread of a POSIX process, which is
where the filter's worker processes call us. Elsewhere (threads, Windows) there is no timer and
the input size limits in distill.verify.latex are the only guard. An outer alarm that is already
running (pytest-timeout's) is kept: re-armed with its remaining time when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator


class TimeLimit(Exception):
    """The guarded block ran out of time."""


def _raise(signum, frame):
    raise TimeLimit()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimit inside the block after ``seconds`` (no-op where no timer is available)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    outer = signal.getitimer(signal.ITIMER_REAL)[0] if usable else 0.0
    if not usable or 0 < outer <= seconds:  # an outer alarm (e.g. pytest-timeout) fires first: leave it
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # re-arm the outer alarm with what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))
