"""Private pin roots: a bpffs of the kit's own for maps declared ``LIBBPF_PIN_BY_NAME``.

Programs that share a map with a user-space tool declare it ``__uint(pinning, LIBBPF_PIN_BY_NAME)``
and libbpf pins it at ``/sys/fs/bpf/NAME`` - which fails where no bpffs is mounted there, and
where one is, outlives the test and hands the next test the old map and its old counts. The kit
instead pins such maps under a :class:`PinRoot`: a fresh bpffs mounted on a directory under
``/run/xdptest/bpffs`` (only once an object needs it). Programs loaded with the same root share
their pinned maps, as their authors intended; unmounting the root removes every pin in it. A
root is recorded before it is mounted, so the reaper removes those of a process that was killed.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import errno
import os
import threading
from pathlib import Path

from xdptest import registry
from xdptest.errors import NotSupportedError, PermissionDeniedError

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount_bpffs(path: Path) -> None:
    if _libc.mount(b"bpf", str(path).encode(), b"bpf", 0, None) == 0:
        return
    code = ctypes.get_errno()
    if code == errno.EPERM:
        raise PermissionDeniedError(f"mounting a bpffs for pinned maps at {path} needs CAP_SYS_ADMIN: run as root")
    raise NotSupportedError("a private bpffs for pinned maps", f"mount -t bpf at {path}: {os.strerror(code)} "
                            "(CONFIG_BPF_SYSCALL)")


def remove_root(path: str) -> None:
    """Unmount a kit bpffs (removing its pins) and its directory; also for the reaper."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        code = ctypes.get_errno()
        raise OSError(code, f"unmounting the pin root {path}: {os.strerror(code)}")
    Path(path).rmdir()


class PinRoot:
    """A private bpffs, mounted the first time :attr:`path` is asked for; ``close()`` unmounts it
    (every pin in it goes) and removes its directory. Safe to close twice or when never mounted."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def mounted(self) -> bool:
        return self._path is not None

    @property
    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                path = registry.PIN_ROOT_DIR / registry.new_name("p")
                registry.record_pin_root(str(path))
                try:
                    path.mkdir(parents=True)
                    _mount_bpffs(path)
                except BaseException:
                    if path.is_dir():
                        path.rmdir()
                    registry.forget_pin_root(str(path))
                    raise
                self._path = path
            return self._path

    def pins(self) -> list[str]:
        """The names pinned here now (not the kernel's own ``maps.debug``/``progs.debug``)."""
        if self._path is None:
            return []
        return sorted(n for n in os.listdir(self._path) if not n.endswith(".debug"))

    def close(self) -> None:
        with self._lock:
            path, self._path = self._path, None
        if path is not None:
            remove_root(str(path))
            registry.forget_pin_root(str(path))

    def __repr__(self) -> str:
        return f"PinRoot({self._path or 'not mounted'})"


_process_root: PinRoot | None = None
_process_lock = threading.Lock()


def process_root() -> PinRoot:
    """The pin root of programs loaded outside a test's fixtures (removed when the process exits)."""
    global _process_root
    with _process_lock:
        if _process_root is None:
            _process_root = PinRoot()
            atexit.register(_process_root.close)
        return _process_root


def leftover_roots() -> list[str]:
    """Kit bpffs mounts on this machine (live processes' included)."""
    prefix = str(registry.PIN_ROOT_DIR) + "/"
    try:
        with open("/proc/self/mounts") as mounts:
            return sorted(line.split()[1] for line in mounts if line.split()[1].startswith(prefix))
    except OSError:
        return []
