"""Kernel trees laid out as ``dpkg-deb -x`` unpacks Debian's packages, made from the kit's cached
kernels: what a user gives ``--xdptest-kernel PATH``.

Unpacked packages have no ``modules.dep`` (depmod runs only when a package is installed), so the
trees leave the module indexes out. Two layouts:

- ``old``: ``boot/vmlinuz-RELEASE`` and ``lib/modules/RELEASE``, as bullseye's ``linux-image``
  package; given by its image path;
- ``split``: ``usr/lib/modules/RELEASE/vmlinuz`` with the modules beside it, as sid's
  ``linux-binary`` and ``linux-modules`` packages; given by its directory.

Files are hard links into the cache where the file system allows.
``python -m tests.vm.unpacked old|split KERNEL DEST`` lays one out and prints the path to give.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from xdptest.vm.kernels import Kernel, KernelSpec, cached_kernel

INDEXES = ("modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.symbols",
           "modules.symbols.bin", "modules.softdep", "modules.devname", "modules.builtin.bin",
           "modules.builtin.alias.bin", "modules.weakdep")


def cached(name: str) -> Kernel | None:
    """The named kernel from the cache, or None where it is not there yet."""
    kernel = cached_kernel(KernelSpec.parse(name))
    return kernel if kernel is not None and kernel.modules is not None else None


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def unpacked_modules(kernel: Kernel, dest: Path) -> None:
    """The kernel's module tree at ``dest``, without the indexes depmod writes."""
    assert kernel.modules is not None
    modules = kernel.modules
    shutil.copytree(modules, dest, copy_function=_link, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == modules and n in INDEXES])


def old_layout(kernel: Kernel, root: Path) -> Path:
    """``root/boot/vmlinuz-RELEASE`` and ``root/lib/modules/RELEASE``; returns the image path."""
    image = root / "boot" / f"vmlinuz-{kernel.release}"
    image.parent.mkdir(parents=True)
    _link(str(kernel.image), str(image))
    unpacked_modules(kernel, root / "lib/modules" / kernel.release)
    return image


def split_layout(kernel: Kernel, root: Path) -> Path:
    """``root/usr/lib/modules/RELEASE/{vmlinuz,kernel/...}``; returns ``root``."""
    modules = root / "usr/lib/modules" / kernel.release
    unpacked_modules(kernel, modules)
    _link(str(kernel.image), str(modules / "vmlinuz"))
    return root


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("old", "split"):
        print("usage: python -m tests.vm.unpacked old|split KERNEL DEST", file=sys.stderr)
        return 2
    layout, name, dest = argv[0], argv[1], Path(argv[2])
    kernel = cached(name)
    if kernel is None:
        print(f"no {name} kernel in the cache yet (run xdptest-vm --kernel {name} -- true)", file=sys.stderr)
        return 1
    print(old_layout(kernel, dest) if layout == "old" else split_layout(kernel, dest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
