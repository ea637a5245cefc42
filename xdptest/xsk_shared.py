"""What the AF_XDP sockets of one interface share: the built-in redirect program (one attachment
per interface, detached with its last socket) and the busy-poll sysfs settings (set with the
first socket that asks for busy polling, restored with the last)."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from xdptest.errors import ConfigError, NotSupportedError

if TYPE_CHECKING:
    from xdptest.bpf import Attachment, XdpProgram
    from xdptest.netns import Endpoint

__all__ = ["BUSY_POLL_SYSFS", "InterfaceTable", "interfaces"]

AttachMode = Literal["native", "generic"]
BUSY_POLL_SYSFS = {"napi_defer_hard_irqs": "2", "gro_flush_timeout": "200000"}


@dataclass
class _SharedProgram:
    program: XdpProgram
    attachment: Attachment
    mode: str
    users: int = 0


class InterfaceTable:
    """Per-interface state that sockets share: the attached redirect program, busy-poll sysfs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.programs: dict[tuple[str, int], _SharedProgram] = {}
        self.busy: dict[tuple[str, int], tuple[dict[str, str], int]] = {}  # saved, users

    def acquire_program(self, endpoint: Endpoint, mode: AttachMode) -> XdpProgram:
        from xdptest.bpf import XdpProgram

        key = (endpoint.netns.name, endpoint.ifindex)
        with self.lock:
            shared = self.programs.get(key)
            if shared is None:
                program = XdpProgram.load("redirect")
                try:
                    # The redirect program never sends XDP_TX, and a keeper on the sending end
                    # costs copy-mode TX frames under load (measured): leave that end bare.
                    attachment = program.attach(endpoint, mode=mode, peer_keeper=False)
                except BaseException:
                    program.close()
                    raise
                shared = self.programs[key] = _SharedProgram(program, attachment, mode)
            elif shared.mode != mode:
                raise ConfigError(f"{endpoint} already runs the redirect program in {shared.mode} "
                                  f"mode for another socket; ask for attach_mode={shared.mode!r}")
            shared.users += 1
            return shared.program

    def release_program(self, endpoint: Endpoint) -> None:
        key = (endpoint.netns.name, endpoint.ifindex)
        with self.lock:
            shared = self.programs.get(key)
            if shared is None:
                return
            shared.users -= 1
            if shared.users > 0:
                return
            del self.programs[key]
        shared.program.close()  # detaches

    def acquire_busy_poll(self, endpoint: Endpoint) -> None:
        key = (endpoint.netns.name, endpoint.ifindex)
        with self.lock:
            saved, users = self.busy.get(key, ({}, 0))
            if users == 0:
                for name, value in BUSY_POLL_SYSFS.items():
                    saved[name] = _sysfs(endpoint, name)
                    _sysfs(endpoint, name, value)
            self.busy[key] = (saved, users + 1)

    def release_busy_poll(self, endpoint: Endpoint) -> None:
        key = (endpoint.netns.name, endpoint.ifindex)
        with self.lock:
            saved, users = self.busy.pop(key, ({}, 0))
            if users > 1:
                self.busy[key] = (saved, users - 1)
            elif users == 1 and not endpoint.netns.closed:
                for name, value in saved.items():
                    _sysfs(endpoint, name, value)


interfaces = InterfaceTable()


def _sysfs(endpoint: Endpoint, name: str, value: str | None = None) -> str:
    """Read or write /sys/class/net/IF/NAME as the endpoint's namespace sees it.

    /sys shows the devices of the namespace that mounted it, so this runs ``ip netns exec``, which
    mounts a fresh sysfs for the namespace.
    """
    path = f"/sys/class/net/{endpoint.ifname}/{name}"
    argv = ["cat" if value is None else "tee", path]
    if endpoint.netns.name:  # /sys shows a namespace's devices only to a process inside it
        argv = ["ip", "netns", "exec", endpoint.netns.name, *argv]
    try:
        done = subprocess.run(argv, input=value, capture_output=True, text=True, timeout=10,
                              check=True)
    except subprocess.CalledProcessError as exc:
        raise NotSupportedError(f"busy polling ({path})", exc.stderr.strip() or "cannot access it") from None
    return done.stdout.strip()
