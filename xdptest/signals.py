"""Termination signals clean up like Ctrl-C.

``timeout``, CI cancellation and pytest-timeout stop a process with SIGTERM, a closed terminal
with SIGHUP; their default action ends the process at once and leaves its namespaces, links and
programs behind until a later run reaps them. With :func:`terminate_like_interrupt` they raise
:class:`Terminated` (a ``KeyboardInterrupt``) in the main thread instead, so every ``with`` block,
``finally`` and fixture teardown runs as it does for Ctrl-C. A second signal during that cleanup
is ignored, so a patient sender of SIGTERM does not cut it short; a raise that Python swallowed
(in an at-fork hook, say) is raised again by :func:`check`, which long waits call.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

TERMINATING = (signal.SIGTERM, signal.SIGHUP)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


class _Pending:
    """The signal that arrived and whether the code that cleans up has taken it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.taken = threading.Event()


_pending = _Pending()


def taken(exc: BaseException) -> None:
    """Cleanup for ``exc`` has begun (an ``except KeyboardInterrupt`` caught it): a second signal
    must not cut it short."""
    if isinstance(exc, Terminated):
        _pending.taken.set()


def check() -> None:
    """Raise :class:`Terminated` again if a signal arrived and nothing took it. The handler's
    raise can be swallowed where Python ignores exceptions (an at-fork hook: pyroute2 forks), so
    long waits call this on each tick."""
    if _pending.signum is not None and not _pending.taken.is_set():
        raise Terminated(_pending.signum)


def _raising_handler() -> Callable[[int, FrameType | None], None]:
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            # A forked child (pyroute2 forks helpers) must die as it would have, not run on
            # through the parent's code.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if _pending.taken.is_set():
            return  # cleanup of an earlier one is under way
        _pending.signum = signum
        raise Terminated(signum)

    return handler


def install() -> dict[int, Handler]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` where they still have their default
    action; returns the handlers replaced (empty off the main thread, where signals cannot be
    handled)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handler = _raising_handler()
    previous: dict[int, Handler] = {}
    for signum in TERMINATING:
        if signal.getsignal(signum) is signal.SIG_DFL:  # a handler of the caller's stays
            previous[signum] = signal.signal(signum, handler)
    return previous


def restore(previous: dict[int, Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    previous = install()
    try:
        yield
    finally:
        restore(previous)
