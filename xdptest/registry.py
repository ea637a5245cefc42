"""Names for what the kit creates, and a record of it so a later run can remove leftovers.

Every namespace and interface name starts with ``xt``, fits the kernel's 15-character limit and
carries a token that is random per process (renewed after ``fork``), so pytest-xdist workers and
parallel CI jobs never collide. Each process records the namespaces it creates in a small file
under ``/run/xdptest``; when a process dies without cleaning up (SIGKILL, OOM), the next run of the
kit finds the record of a dead process and removes what it lists.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

PREFIX = "xt"
IFNAMSIZ = 15
STATE_DIR = Path(os.environ.get("XDPTEST_STATE_DIR", "/run/xdptest"))
PIN_ROOT_DIR = STATE_DIR / "bpffs"  # each private bpffs is mounted on a directory here
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

_lock = threading.Lock()
_token = ""
_counter: Iterator[int] = itertools.count(1)
_owned: set[str] = set()
_pin_roots: set[str] = set()  # private bpffs mounts (see xdptest.pins)


def _new_token() -> None:
    global _token, _counter
    _token = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    _counter = itertools.count(1)
    _owned.clear()
    _pin_roots.clear()


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ALPHABET[r] + out
        if n == 0:
            return out


_new_token()
os.register_at_fork(after_in_child=_new_token)


def new_name(kind: str) -> str:
    """A fresh name such as ``xtk3f9qn1``: prefix, process token, kind letter, counter."""
    with _lock:
        name = f"{PREFIX}{_token}{kind}{_base36(next(_counter))}"
    if len(name) > IFNAMSIZ - 1:  # leave room for an a/b suffix on veth ends
        raise RuntimeError(f"name counter exhausted: {name}")
    return name


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _record_path() -> Path:
    return STATE_DIR / f"{os.getpid()}.json"


def _write_record() -> None:
    path = _record_path()
    if not _owned and not _pin_roots:
        path.unlink(missing_ok=True)
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    body = {"pid": os.getpid(), "start": _start_time(os.getpid()), "netns": sorted(_owned),
            "pins": sorted(_pin_roots)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


def record(netns_name: str) -> None:
    """Note, before it is created, that this process owns a namespace."""
    with _lock:
        _owned.add(netns_name)
        _write_record()


def forget(netns_name: str) -> None:
    """Note that a namespace was removed."""
    with _lock:
        _owned.discard(netns_name)
        _write_record()


def record_pin_root(path: str) -> None:
    """Note, before it is mounted, that this process owns a private bpffs at ``path``."""
    with _lock:
        _pin_roots.add(path)
        _write_record()


def forget_pin_root(path: str) -> None:
    with _lock:
        _pin_roots.discard(path)
        _write_record()


def owned() -> list[str]:
    with _lock:
        return sorted(_owned)


def _is_alive(pid: int, start: str | None) -> bool:
    current = _start_time(pid)
    return current is not None and (start is None or current == start)


def reap_dead(remove_netns: Callable[[str], None],
              remove_pin_root: Callable[[str], None] | None = None) -> list[str]:
    """Remove the namespaces (and private bpffs mounts, with their pins) recorded by processes
    that are gone; return their names."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for path in STATE_DIR.glob("*.json"):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = int(body.get("pid", 0))
        if pid == os.getpid() or _is_alive(pid, body.get("start")):
            continue
        claimed = path.with_suffix(f".reap{os.getpid()}")
        try:
            os.rename(path, claimed)  # only one reaper wins a record
        except OSError:
            continue
        for name in body.get("netns", []):
            if str(name).startswith(PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    remove_netns(str(name))
                    removed.append(str(name))
        for root in body.get("pins", []):
            if remove_pin_root is not None and Path(root).parent == PIN_ROOT_DIR:
                with contextlib.suppress(OSError):
                    remove_pin_root(str(root))
                    removed.append(str(root))
        claimed.unlink(missing_ok=True)
    return removed
