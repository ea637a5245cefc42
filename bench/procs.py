"""External tools a benchmark starts (trafgen, a scapy sender), and a check that none outlives its row.

A tool runs in its own session, so it and everything it starts share one process group: ``ip netns
exec`` execs the tool in place, and ``trafgen -P1`` forks a worker that does the sending while the
parent only waits for it. Signalling the parent alone leaves the worker running, still sending on
the pair, which then slows whatever is measured there next. ``tool`` signals the whole group, kills
the group after a grace period, and raises if any process of the group is still there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class ToolLeftRunning(RuntimeError):
    """A process of a tool's group survived SIGKILL to the group."""


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command name) of every process in group ``pgid`` that has not exited (zombies left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            found.append((int(entry), comm))
    return found


def _wait_empty(proc: subprocess.Popen[Any], pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()  # reap the leader as soon as it exits
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGINT, grace: float = 5.0) -> None:
    """Send ``sig`` to the tool's whole group, SIGKILL the group after ``grace`` seconds, reap the
    leader, and raise ToolLeftRunning if any process of the group remains."""
    pgid = proc.pid  # a session leader's group id is its pid
    _signal_group(pgid, sig)
    if not _wait_empty(proc, pgid, grace):
        _signal_group(pgid, signal.SIGKILL)
        _wait_empty(proc, pgid, 2.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)
    left = group_members(pgid)
    if left or proc.returncode is None:
        raise ToolLeftRunning(f"{' '.join(map(str, proc.args))[:100]}: its process group {pgid} still has "
                              f"{left or [(proc.pid, 'leader')]} after SIGKILL")


@contextlib.contextmanager
def tool(argv: Sequence[str], *, sig: int = signal.SIGINT, grace: float = 5.0,
         **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """Run ``argv`` in its own session for the body of the ``with``; on the way out, however the body
    ends, stop its whole process group (see ``stop_group``)."""
    proc = subprocess.Popen(list(argv), start_new_session=True, **popen)
    try:
        yield proc
    finally:
        stop_group(proc, sig, grace)


def run_as_root(name: str, main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status, or with a message where this process is not root."""
    if os.geteuid() != 0:
        sys.exit(f"{name}: run as root")
    sys.exit(main())
