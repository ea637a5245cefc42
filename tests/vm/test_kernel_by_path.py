"""On the host: a kernel given by path as ``dpkg-deb -x`` unpacks its packages boots as it is.

The trees are laid out from the cached Debian kernels the way their packages unpack, without
``modules.dep`` (depmod runs only when a package is installed): the old layout
(``boot/vmlinuz-RELEASE`` with ``lib/modules/RELEASE``, as bullseye's ``linux-image`` package) and
the split one (``usr/lib/modules/RELEASE/vmlinuz`` with the modules beside it, as sid's
``linux-binary`` and ``linux-modules``), given by image path and by directory. Each boots a real
guest, so it runs only where that kernel is in the cache; elsewhere it skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.conftest import skip_unless_host_may_boot_guests
from tests.vm.unpacked import cached, old_layout, split_layout
from xdptest.vm.boot import choose_accel
from xdptest.vm.kernels import Kernel


def _cached(name: str) -> Kernel:
    skip_unless_host_may_boot_guests("a guest")
    kernel = cached(name)
    if kernel is None:
        pytest.skip(f"no {name} guest kernel in the cache yet (scripts/test-kernels.sh prepares it)")
    return kernel


def _old_layout(kernel: Kernel, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "linux-image"
    image = old_layout(kernel, root)
    assert not (root / "lib/modules" / kernel.release / "modules.dep").exists()
    return root, image


def _boot(kernel_arg: str, kernel: Kernel, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDPTEST_CACHE=str(cache), XDPTEST_VM_ACCEL=choose_accel(kernel))
    command = "uname -r; modprobe veth && ip link add name xa type veth peer name xb && echo veth"
    return subprocess.run([sys.executable, "-m", "xdptest.vm", "--kernel", kernel_arg, "--timeout", "300", "--",
                           "sh", "-c", command],
                          capture_output=True, text=True, timeout=400, env=env, check=False)


def test_an_unpacked_image_package_boots(tmp_path: Path) -> None:
    kernel = _cached("debian-5.10")
    root, image = _old_layout(kernel, tmp_path)
    proc = _boot(str(image), kernel, tmp_path / "cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [kernel.release, "veth"]
    by_path = tmp_path / "cache" / "by-path"
    indexed = list(by_path.glob(f"{kernel.release}-*/lib/modules/{kernel.release}/modules.dep"))
    assert len(indexed) == 1, "depmod ran on a copy in the cache"
    assert not (root / "lib/modules" / kernel.release / "modules.dep").exists(), "the user's tree is untouched"


def test_an_unpacked_split_package_boots_by_directory(tmp_path: Path) -> None:
    kernel = _cached("debian-latest")
    root = split_layout(kernel, tmp_path / "linux-binary")
    assert not (root / "usr/lib/modules" / kernel.release / "modules.dep").exists()
    proc = _boot(str(root), kernel, tmp_path / "cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == [kernel.release, "veth"]


def test_a_tree_without_the_guest_modules_is_refused_before_booting(tmp_path: Path) -> None:
    kernel = _cached("debian-5.10")
    root, image = _old_layout(kernel, tmp_path)
    modules = root / "lib/modules" / kernel.release
    shutil.rmtree(modules / "kernel/fs/9p")
    proc = _boot(str(image), kernel, tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert "9p" in proc.stderr and "CONFIG_9P_FS" in proc.stderr
    assert "guest exited" not in proc.stderr
