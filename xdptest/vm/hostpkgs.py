"""The host programs the guest machinery needs, and installing the Debian packages that carry them.

Each Debian package is looked for by a command on ``PATH`` or a file, which is cheap. Missing
packages are installed with ``apt-get`` when running as root on a host that has it (one line says
what is installed); otherwise, or with ``XDPTEST_NO_INSTALL=1``, the error names the command to
run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from xdptest.errors import XdpTestError

# Debian package -> what shows it is there: commands on PATH, or absolute paths (any one suffices)
PROBES: dict[str, tuple[str, ...]] = {
    "qemu-system-x86": ("qemu-system-x86_64",),
    "busybox-static": ("/bin/busybox", "/usr/bin/busybox"),
    "kmod": ("depmod",),
    "gcc-12": ("gcc-12",),
    "make": ("make",),
    "xz-utils": ("xz",),
    "dpkg": ("dpkg-deb",),
    "apt": ("apt-get",),
}
GUEST_PACKAGES = ("qemu-system-x86", "busybox-static", "kmod")  # booting a prepared kernel
KERNEL_PACKAGES = ("apt", "dpkg", "kmod", "gcc-12", "make", "xz-utils")  # preparing a Debian kernel
ALL_PACKAGES = tuple(PROBES)
NO_INSTALL_ENV = "XDPTEST_NO_INSTALL"


class KernelUnavailableError(XdpTestError, OSError):
    """A guest kernel could not be obtained or prepared (the message says what is missing)."""

    def __str__(self) -> str:
        return str(self.strerror)


def _is_static_elf(path: str) -> bool:
    """An ELF file without a program interpreter (the initramfs has no dynamic loader)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[0x20:0x28], order)
            phentsize = int.from_bytes(head[0x36:0x38], order)
            phnum = int.from_bytes(head[0x38:0x3A], order)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    pt_interp = 3
    return all(int.from_bytes(table[i * phentsize:i * phentsize + 4], order) != pt_interp for i in range(phnum))


def present_on_host(probe: str) -> bool:
    """Whether ``probe`` (a command name, or an absolute path) is there on this host."""
    if probe.startswith("/"):
        if not os.path.isfile(probe):
            return False
        # a dynamically linked busybox (package "busybox") cannot run in the initramfs
        return _is_static_elf(probe) if os.path.basename(probe) == "busybox" else True
    return shutil.which(probe) is not None


def missing_packages(packages: Sequence[str] = ALL_PACKAGES,
                     present: Callable[[str], bool] = present_on_host) -> list[str]:
    """The packages of ``packages`` none of whose probes is present, in the given order."""
    return [p for p in dict.fromkeys(packages) if not any(present(probe) for probe in PROBES.get(p, (p,)))]


def install_command(packages: Sequence[str]) -> str:
    return "sudo apt-get install " + " ".join(packages)


def may_install(euid: int, has_apt_get: bool, env: Mapping[str, str]) -> str | None:
    """None where missing packages may be installed here, else why not."""
    if env.get(NO_INSTALL_ENV, "").strip() not in ("", "0"):
        return f"{NO_INSTALL_ENV} is set"
    if not has_apt_get:
        return "this host has no apt-get"
    if euid != 0:
        return "installing needs root"
    return None


def _needs_lists(output: str) -> bool:
    """apt-get failed because it knows no (current) package lists."""
    return any(text in output for text in (
        "Unable to locate package", "has no installation candidate", "Failed to fetch",
        "Unable to fetch some archives"))


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _apt_get(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *argv], capture_output=True, text=True, env=env, check=False)


def ensure_host_packages(purpose: str, say: Callable[[str], None] | None = None,
                         packages: Sequence[str] = ALL_PACKAGES, *,
                         present: Callable[[str], bool] = present_on_host,
                         apt_get: Runner = _apt_get, euid: int | None = None,
                         env: Mapping[str, str] | None = None) -> list[str]:
    """Make sure the Debian ``packages`` are installed; return those that were installed.

    ``purpose`` says what needs them (``"preparing kernel debian-6.12"``). Raises
    ``KernelUnavailableError`` with the command to run where they are missing and cannot be
    installed here.
    """
    missing = missing_packages(packages, present)
    if not missing:
        return []
    why_not = may_install(os.geteuid() if euid is None else euid, present("apt-get"),
                          os.environ if env is None else env)
    if why_not is not None:
        raise KernelUnavailableError(2, f"{purpose} needs these Debian packages: {' '.join(missing)} "
                                        f"({why_not}); install them with: {install_command(missing)}")
    if say is not None:
        say(f"xdptest-vm: {purpose} needs {' '.join(missing)}: installing with apt-get")
    install = ["install", "-y", "-qq", "--no-install-recommends", *missing]
    proc = apt_get(install)
    if proc.returncode != 0 and _needs_lists(proc.stdout + proc.stderr):
        apt_get(["update", "-qq"])
        proc = apt_get(install)
    still = missing_packages(missing, present)
    if proc.returncode != 0 or still:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith(("E:", "W:"))]
        detail = lines[-1] if lines else f"apt-get exited with status {proc.returncode}"
        raise KernelUnavailableError(5, f"{purpose}: installing {' '.join(missing)} failed ({detail}); "
                                        f"install them with: {install_command(still or missing)}")
    return missing
