"""The pure parts of preparing guest kernels: names, apt sources, package names, module trees,
host packages. No root, no network, no guest."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.unit.test_vm import fake_bzimage
from xdptest.errors import ConfigError
from xdptest.vm import hostpkgs
from xdptest.vm.kernels import (
    DEBIAN_KERNELS,
    KernelListing,
    KernelSpec,
    KernelUnavailableError,
    debian_mirrors,
    decompress_module,
    find_module_tree,
    format_kernels,
    has_module,
    kernel_from_image,
    list_kernels,
    offsets_header,
    resolve_packages,
    source_lines,
)

KEY = "/usr/share/keyrings/debian-archive-keyring.gpg"
MAIN = [("http://deb.debian.org/debian", KEY)]
SECURITY = [("http://deb.debian.org/debian-security", KEY)]
GUEST_DEP = ("kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz\nkernel/net/9p/9pnet.ko.xz:\n"
             "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz\n"
             "kernel/drivers/virtio/virtio_pci.ko.xz:\nkernel/drivers/char/virtio_console.ko.xz:\n"
             "kernel/fs/overlayfs/overlay.ko.xz:\n")


def guest_modules(tree: Path, names: Sequence[str] = ("9p", "9pnet", "9pnet_virtio", "virtio_pci",
                                                         "virtio_console", "overlay")) -> None:
    for name in names:
        ko = tree / "kernel" / f"{name}.ko.xz"
        ko.parent.mkdir(parents=True, exist_ok=True)
        ko.write_bytes(b"")


# --- names ---------------------------------------------------------------------------------------

def test_the_four_names() -> None:
    assert list(DEBIAN_KERNELS) == ["debian-5.10", "debian-6.1", "debian-6.12", "debian-latest"]
    assert KernelSpec.parse("debian-5.10").series == "5.10"
    latest = KernelSpec.parse("debian-latest")
    assert (latest.name, latest.series, latest.image) == ("debian-latest", None, None)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"debian-5\.10, debian-6\.1, debian-6\.12, debian-latest or the path"):
        KernelSpec.parse("debian-9")


# --- apt sources ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "lines"), [
    ("debian-5.10", [f"deb [signed-by={KEY}] http://deb.debian.org/debian bullseye main",
                     f"deb [signed-by={KEY}] http://deb.debian.org/debian-security bullseye-security main"]),
    ("debian-6.1", [f"deb [signed-by={KEY}] http://deb.debian.org/debian bookworm main",
                    f"deb [signed-by={KEY}] http://deb.debian.org/debian bookworm-updates main",
                    f"deb [signed-by={KEY}] http://deb.debian.org/debian-security bookworm-security main"]),
    ("debian-6.12", [f"deb [signed-by={KEY}] http://deb.debian.org/debian bookworm-backports main"]),
    ("debian-latest", [f"deb [signed-by={KEY}] http://deb.debian.org/debian sid main"]),
])
def test_source_lines_per_name(name: str, lines: list[str]) -> None:
    assert source_lines(DEBIAN_KERNELS[name], MAIN, SECURITY) == lines


def test_security_mirror_derived_from_the_main_one_where_the_host_names_none() -> None:
    lines = source_lines(DEBIAN_KERNELS["debian-5.10"], [("http://m.example/debian/", None)], [])
    assert lines == ["deb http://m.example/debian/ bullseye main",
                     "deb http://m.example/debian-security bullseye-security main"]


def test_mirrors_come_from_the_hosts_debian_entries() -> None:
    entries = [("https://packages.cloud.google.com/apt", ["cloud-sdk-bookworm"], None),
               ("https://deb.nodesource.com/node_20.x", ["nodistro"], "/n.gpg"),
               ("http://other/debian", ["trixie"], None),
               ("http://deb.debian.org/debian", ["bookworm", "bookworm-updates"], KEY),
               ("http://deb.debian.org/debian-security", ["bookworm-security"], KEY)]
    assert debian_mirrors(entries) == [("http://deb.debian.org/debian", KEY), ("http://other/debian", None)]
    assert debian_mirrors(entries, security=True) == SECURITY


# --- package names ---------------------------------------------------------------------------------

SID = {
    "linux-headers-amd64": "Package: linux-headers-amd64\nSource: linux-signed-amd64 (7.2.13+1)\n"
                           "Version: 7.2.13-1\nDepends: linux-base-amd64 (= 7.2.13-1), "
                           "linux-headers-7.2.13+deb14-amd64 (= 7.2.13-1)\n",
    "linux-headers-7.2.13+deb14-amd64": "Package: linux-headers-7.2.13+deb14-amd64\nVersion: 7.2.13-1\n"
                                        "Depends: gcc-16-for-host, linux-base (>= 4.12~), "
                                        "linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), "
                                        "linux-headers-7.2.13+deb14-common (= 7.2.13-1), "
                                        "linux-kbuild-7.2.13+deb14\n",
    "linux-binary-7.2.13+deb14-amd64": "Package: linux-binary-7.2.13+deb14-amd64\nVersion: 7.2.13-1\n"
                                       "Depends: linux-base-7.2.13+deb14-amd64 (= 7.2.13-1)\n",
    "linux-image-7.2.13+deb14-amd64": "Package: linux-image-7.2.13+deb14-amd64\nVersion: 7.2.13-1\n",
}
BULLSEYE = {
    "linux-headers-amd64": "Package: linux-headers-amd64\nVersion: 5.10.262-1\n"
                           "Depends: linux-headers-5.10.0-46-amd64 (= 5.10.262-1)\n",
    "linux-headers-5.10.0-46-amd64": "Package: linux-headers-5.10.0-46-amd64\nVersion: 5.10.262-1\n"
                                     "Depends: linux-headers-5.10.0-46-common (= 5.10.262-1), "
                                     "linux-kbuild-5.10 (>= 5.10.262-1), linux-compiler-gcc-10-x86\n",
    "linux-image-5.10.0-46-amd64-unsigned": "Package: linux-image-5.10.0-46-amd64-unsigned\n",
}


def test_packages_of_the_split_layout() -> None:
    pkgs = resolve_packages(SID.get, None)
    assert (pkgs.version, pkgs.abi, pkgs.series, pkgs.release) == ("7.2.13-1", "7.2.13+deb14", "7.2",
                                                                    "7.2.13+deb14-amd64")
    assert pkgs.names == ["linux-binary-7.2.13+deb14-amd64", "linux-modules-7.2.13+deb14-amd64",
                          "linux-base-7.2.13+deb14-amd64", "linux-headers-7.2.13+deb14-amd64",
                          "linux-headers-7.2.13+deb14-common", "linux-kbuild-7.2.13+deb14", "linux-source-7.2"]


def test_packages_of_the_image_layout() -> None:
    pkgs = resolve_packages(BULLSEYE.get, "5.10")
    assert pkgs.release == "5.10.0-46-amd64"
    assert pkgs.names == ["linux-image-5.10.0-46-amd64-unsigned", "linux-headers-5.10.0-46-amd64",
                          "linux-headers-5.10.0-46-common", "linux-kbuild-5.10", "linux-source-5.10"]


def test_a_series_the_archive_does_not_have() -> None:
    with pytest.raises(KernelUnavailableError, match=r"no Linux 6\.12 kernel \(found 5\.10\.262-1\)"):
        resolve_packages(BULLSEYE.get, "6.12")


def test_offsets_header_as_kbuild_makes_it() -> None:
    asm = ('\t.ascii "->SIZE_usb_device_id $32 sizeof(struct usb_device_id)"\t#\n'
           '.ascii "->"\n\t.ascii "->OFF_x_y $2 offsetof(struct x, y)"\n')
    text = offsets_header(asm, "__G__")
    assert "#define SIZE_usb_device_id 32 /* sizeof(struct usb_device_id) */" in text
    assert "#define OFF_x_y 2 /* offsetof(struct x, y) */" in text
    assert text.startswith("#ifndef __G__\n#define __G__\n") and text.endswith("#endif\n")


# --- kernels by path -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["old", "merged-usr", "split"])
def test_module_tree_of_each_layout(tmp_path: Path, layout: str) -> None:
    rel = "6.9.1-amd64"
    if layout == "split":
        mods = tmp_path / "usr/lib/modules" / rel
        image = fake_bzimage(mods / "vmlinuz", rel)
    else:
        mods = tmp_path / ("lib/modules" if layout == "old" else "usr/lib/modules") / rel
        image = fake_bzimage(tmp_path / "boot" / f"vmlinuz-{rel}", rel)
    guest_modules(mods)
    assert find_module_tree(image, rel) == mods
    assert KernelSpec.parse(str(tmp_path)).image == image  # the unpacked directory names its image


def test_a_tree_without_modules_dep_is_indexed_in_the_cache(tmp_path: Path, monkeypatch) -> None:
    if subprocess.run(["sh", "-c", "command -v depmod"], capture_output=True).returncode != 0:
        pytest.skip("needs depmod")
    monkeypatch.setenv("XDPTEST_CACHE", str(tmp_path / "cache"))
    rel = "6.9.1-amd64"
    mods = tmp_path / "pkg/usr/lib/modules" / rel
    image = fake_bzimage(mods / "vmlinuz", rel)
    guest_modules(mods)
    (mods / "modules.order").write_text("")
    kernel = kernel_from_image(KernelSpec.parse(str(image)))
    assert kernel.modules is not None and kernel.modules.is_relative_to(tmp_path / "cache/by-path")
    assert kernel.modules.name == rel and (kernel.modules / "modules.dep").is_file()
    assert not (mods / "modules.dep").exists()  # the package's tree is left as it is
    assert has_module(kernel.modules, "9pnet_virtio") and not kernel.netdevsim
    assert kernel_from_image(KernelSpec.parse(str(image))) == kernel  # reused


def test_a_tree_without_the_guest_modules_is_refused(tmp_path: Path) -> None:
    rel = "6.9.1"
    mods = tmp_path / "lib/modules" / rel
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("kernel/fs/9p/9p.ko.xz:\nkernel/fs/overlayfs/overlay.ko:\n")
    (mods / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    image = fake_bzimage(tmp_path / "boot" / f"vmlinuz-{rel}", rel)
    with pytest.raises(KernelUnavailableError) as err:
        kernel_from_image(KernelSpec.parse(str(image)))
    text = str(err.value)
    assert "lacks what the guest needs to boot: 9pnet_virtio, virtio_console, neither" in text
    assert "CONFIG_NET_9P_VIRTIO=m (or y), CONFIG_VIRTIO_CONSOLE=m (or y)" in text
    assert "CONFIG_9P_FS" not in text and "CONFIG_VIRTIO_PCI" not in text


def test_a_tree_that_cannot_say_what_is_built_in_is_used(tmp_path: Path) -> None:
    rel = "6.9.1"
    mods = tmp_path / "lib/modules" / rel
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("kernel/fs/9p/9p.ko.xz:\n")
    image = fake_bzimage(tmp_path / "boot" / f"vmlinuz-{rel}", rel)
    assert kernel_from_image(KernelSpec.parse(str(image))).modules == mods
    (mods / "config").write_text("CONFIG_9P_FS=m\nCONFIG_NET_9P_VIRTIO=y\nCONFIG_VIRTIO_PCI=y\n"
                                 "CONFIG_VIRTIO_CONSOLE=y\nCONFIG_OVERLAY_FS=y\n")
    assert kernel_from_image(KernelSpec.parse(str(image))).modules == mods
    (mods / "config").write_text("CONFIG_VIRTIO_PCI=y\n")
    with pytest.raises(KernelUnavailableError, match=r"CONFIG_NET_9P_VIRTIO=m \(or y\), CONFIG_VIRTIO_CONSOLE"):
        kernel_from_image(KernelSpec.parse(str(image)))


def test_built_in_modules_count(tmp_path: Path) -> None:
    rel = "6.9.1"
    mods = tmp_path / "lib/modules" / rel
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text(GUEST_DEP.replace("kernel/drivers/char/virtio_console.ko.xz:\n", ""))
    (mods / "modules.builtin").write_text("kernel/drivers/char/virtio_console.ko\n")
    image = fake_bzimage(tmp_path / "boot" / f"vmlinuz-{rel}", rel)
    assert kernel_from_image(KernelSpec.parse(str(image))).modules == mods


def test_an_image_whose_release_cannot_be_read(tmp_path: Path) -> None:
    image = fake_bzimage(tmp_path / "vmlinuz", "")
    with pytest.raises(ConfigError, match="names no kernel release"):
        kernel_from_image(KernelSpec.parse(str(image)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no kernel image"):
        KernelSpec.parse(str(tmp_path / "empty"))


def test_modules_are_decompressed(tmp_path: Path) -> None:
    import gzip
    import lzma
    (tmp_path / "a.ko.xz").write_bytes(lzma.compress(b"\x7fELF-a"))
    (tmp_path / "b.ko.gz").write_bytes(gzip.compress(b"\x7fELF-b"))
    (tmp_path / "c.ko").write_bytes(b"\x7fELF-c")
    assert [decompress_module(tmp_path / n) for n in ("a.ko.xz", "b.ko.gz", "c.ko")] == [
        b"\x7fELF-a", b"\x7fELF-b", b"\x7fELF-c"]


# --- listing ------------------------------------------------------------------------------------------

def test_listing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDPTEST_CACHE", str(tmp_path))
    assert [(k.name, k.cached) for k in list_kernels()] == [(n, False) for n in DEBIAN_KERNELS]
    lines = format_kernels([KernelListing("debian-6.12", "bpo", True, "6.12.9-amd64", "6.12.9-1", True),
                            KernelListing("debian-latest", "sid", False)])
    assert lines == ["debian-6.12    bpo; cached: 6.12.9-amd64 (6.12.9-1)",
                     "debian-latest  sid; not cached (downloaded on first use)"]


# --- host packages ------------------------------------------------------------------------------------

def only(*there: str):
    return lambda probe: probe in there


class FakeApt:
    def __init__(self, results: list[tuple[int, str]]) -> None:
        self.calls: list[list[str]] = []
        self.results = results

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        rc, err = self.results.pop(0)
        return subprocess.CompletedProcess(list(argv), rc, "", err)


def test_nothing_missing_does_nothing() -> None:
    apt = FakeApt([])
    present = only("qemu-system-x86_64", "/usr/bin/busybox", "depmod", "gcc-12", "make", "xz", "dpkg-deb", "apt-get")
    assert hostpkgs.ensure_host_packages("x", None, present=present, apt_get=apt, euid=1000, env={}) == []
    assert apt.calls == []


def test_missing_packages_by_command_and_file() -> None:
    assert hostpkgs.missing_packages(hostpkgs.GUEST_PACKAGES, only("depmod")) == ["qemu-system-x86", "busybox-static"]
    assert hostpkgs.missing_packages(("busybox-static",), only("/bin/busybox")) == []


@pytest.mark.parametrize(("euid", "apt_get", "env", "why"), [
    (1000, True, {}, "installing needs root"),
    (0, False, {}, "this host has no apt-get"),
    (0, True, {"XDPTEST_NO_INSTALL": "1"}, "XDPTEST_NO_INSTALL is set"),
])
def test_missing_packages_not_installed_say_the_command(euid: int, apt_get: bool, env: dict[str, str],
                                                        why: str) -> None:
    present = only("apt-get") if apt_get else only()
    apt = FakeApt([])
    with pytest.raises(KernelUnavailableError) as err:
        hostpkgs.ensure_host_packages("booting a guest", None, hostpkgs.GUEST_PACKAGES, present=present,
                                      apt_get=apt, euid=euid, env=env)
    assert str(err.value) == (f"booting a guest needs these Debian packages: qemu-system-x86 busybox-static kmod "
                              f"({why}); install them with: sudo apt-get install qemu-system-x86 busybox-static kmod")
    assert apt.calls == []


def test_root_installs_and_updates_lists_only_when_needed() -> None:
    installed: set[str] = {"apt-get"}
    said: list[str] = []

    def apt(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        if argv[0] == "install" and len(calls) == 1:
            return subprocess.CompletedProcess(list(argv), 100, "", "E: Unable to locate package make\n")
        if argv[0] == "install":
            installed.update({"make", "xz"})
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    calls: list[list[str]] = []
    got = hostpkgs.ensure_host_packages("preparing kernel debian-5.10", said.append, ("make", "xz-utils", "apt"),
                                        present=installed.__contains__, apt_get=apt, euid=0, env={})
    assert got == ["make", "xz-utils"]
    assert calls == [["install", "-y", "-qq", "--no-install-recommends", "make", "xz-utils"], ["update", "-qq"],
                     ["install", "-y", "-qq", "--no-install-recommends", "make", "xz-utils"]]
    assert said == ["xdptest-vm: preparing kernel debian-5.10 needs make xz-utils: installing with apt-get"]


def test_a_failed_install_says_the_command() -> None:
    apt = FakeApt([(100, "E: Could not get lock /var/lib/dpkg/lock-frontend\n")])
    with pytest.raises(KernelUnavailableError, match=r"installing make failed \(E: Could not get lock.*"
                                                      r"install them with: sudo apt-get install make"):
        hostpkgs.ensure_host_packages("x", None, ("make",), present=only("apt-get"), apt_get=apt, euid=0, env={})
    assert len(apt.calls) == 1


def test_a_dynamic_busybox_is_not_enough(tmp_path: Path) -> None:
    import shutil
    sh = shutil.which("sh")
    assert sh is not None
    assert not hostpkgs._is_static_elf(sh)
