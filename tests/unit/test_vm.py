"""The pure parts of xdptest-vm: kernel names, arguments, environment, initramfs, error messages.

No root, no guest and no network: the apt test points apt at a closed local port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from xdptest.errors import ConfigError
from xdptest.plugin_guest import guest_pytest_args
from xdptest.vm import guest_env, main
from xdptest.vm.boot import GuestRun, _cpio_entry, _module_paths, build_initramfs, guest_script
from xdptest.vm.kernels import (
    DebianKernelBuilder,
    Kernel,
    KernelSpec,
    KernelUnavailableError,
    image_release,
    kernel_from_image,
    parse_sources,
    prepare,
)


def fake_bzimage(path: Path, release: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(0x5000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x3000 - 0x200).to_bytes(2, "little")
    text = f"{release} (builder@example) #1 SMP".encode()
    data[0x3000:0x3000 + len(text)] = text
    path.write_bytes(bytes(data))
    return path


def test_debian_kernel_names() -> None:
    assert KernelSpec.parse("debian-6.12").series == "6.12"
    assert KernelSpec.parse(" debian-6.1 ").series == "6.1"
    assert KernelSpec.parse("debian-5.10").series == "5.10"
    latest = KernelSpec.parse("debian-latest")  # whatever series Debian unstable has
    assert latest.series is None and latest.image is None


@pytest.mark.parametrize("name", ["debian-4.19", "6.12", "ubuntu", ""])
def test_unknown_kernel_names_say_what_is_accepted(name: str) -> None:
    with pytest.raises(ConfigError, match=r"use debian-5\.10, debian-6\.1, debian-6\.12, debian-latest or the path "
                                          r"of a kernel image"):
        KernelSpec.parse(name)


def test_a_missing_image_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such kernel image"):
        KernelSpec.parse(str(tmp_path / "vmlinuz"))


def test_release_comes_from_the_setup_header(tmp_path: Path) -> None:
    image = fake_bzimage(tmp_path / "vmlinuz", "6.12.9-test")
    assert image_release(image) == "6.12.9-test"
    (tmp_path / "not").write_bytes(b"\0" * 0x1000)
    with pytest.raises(ConfigError, match="not an x86 bzImage"):
        image_release(tmp_path / "not")


def test_image_path_finds_its_modules_above_it(tmp_path: Path) -> None:
    image = fake_bzimage((tmp_path / "boot").mkdir() or tmp_path / "boot" / "vmlinuz-6.9.1", "6.9.1")
    mods = tmp_path / "lib/modules/6.9.1"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("extra/netdevsim.ko: kernel/net/psample/psample.ko.xz\n"
                                      "kernel/net/psample/psample.ko.xz:\n")
    kernel = kernel_from_image(KernelSpec.parse(str(image)))
    assert (kernel.release, kernel.modules, kernel.netdevsim) == ("6.9.1", mods, True)
    assert prepare(KernelSpec.parse(str(image))) == kernel  # a path is used as it is: no cache


def test_boot_modules_come_with_their_dependencies_first(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n"
        "kernel/net/9p/9pnet.ko.xz:\nkernel/fs/netfs/netfs.ko.xz:\n"
        "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz\n")
    got = [p.name for p in _module_paths(tmp_path, ["9pnet_virtio", "9p", "virtio_pci"])]
    assert got == ["9pnet.ko.xz", "9pnet_virtio.ko.xz", "netfs.ko.xz", "9p.ko.xz"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--xdptest-kernel", "debian-6.12", "-q", "tests/vm"], ["-q", "tests/vm"]),
    (["--xdptest-kernel=debian-6.1", "-n", "2", "-k", "x"], ["-k", "x"]),
    (["-n2", "--numprocesses=auto", "--dist", "load", "tests"], ["tests"]),
    (["-nauto", "--junitxml=out/j.xml", "-x"], ["--junitxml=out/j.xml", "-x"]),
])
def test_guest_pytest_args(args: list[str], expected: list[str]) -> None:
    assert guest_pytest_args(args, xdist=False) == [*expected, "-p", "no:cacheprovider"]
    assert guest_pytest_args(args, xdist=True)[-2:] == ["-n", "0"]


def test_guest_env_keeps_the_kit_and_python_but_not_this_machine() -> None:
    host = {"PATH": "/x/bin", "SSH_AUTH_SOCK": "/tmp/s", "XDPTEST_CACHE": "/c", "XDPTEST_WORKERS": "2",
            "PYTEST_XDIST_WORKER": "gw0", "PYTHONPATH": "/p", "LC_ALL": "C.UTF-8", "DISPLAY": ":0"}
    env = guest_env(host, tty=False)
    assert env["PATH"] == "/x/bin" and env["PYTHONPATH"] == "/p" and env["LC_ALL"] == "C.UTF-8"
    assert env["XDPTEST_IN_GUEST"] == "1" and env["XDPTEST_WORKERS"] == "2"
    assert not {"SSH_AUTH_SOCK", "XDPTEST_CACHE", "PYTEST_XDIST_WORKER", "DISPLAY", "PY_COLORS"} & set(env)
    assert guest_env(host, tty=True)["PY_COLORS"] == "1"


def test_guest_script_quotes_everything() -> None:
    run = GuestRun(argv=["sh", "-c", "echo 'a b' $X"], cwd="/some dir", env={"X": "it's", "bad-name": "x"})
    text = guest_script(run)
    assert "export X='it'\"'\"'s'" in text and "bad-name" not in text
    assert "cd '/some dir'" in text
    assert "sh -c 'echo '\"'\"'a b'\"'\"' $X'" in text


def test_initramfs_holds_init_busybox_and_shares(tmp_path: Path) -> None:
    if not any(os.path.isfile(p) for p in ("/bin/busybox", "/usr/bin/busybox")) or not shutil.which("cpio"):
        pytest.skip("needs busybox and cpio (apt-get install busybox-static cpio)")
    kernel = Kernel("k", "6.9.1", tmp_path / "vmlinuz", None, False)
    out = tmp_path / "initrd"
    build_initramfs(kernel, [("xdptest-rw0", "/out dir")], out)
    listing = subprocess.run(["cpio", "-it"], input=out.read_bytes(), capture_output=True, check=True).stdout
    names = listing.decode().split()
    assert {"init", "bin/busybox", "shares.list", "modules.list"} <= set(names)
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=out.read_bytes(), cwd=extract, check=True)
    assert (extract / "shares.list").read_text() == "xdptest-rw0 /out dir\n"
    assert os.access(extract / "init", os.X_OK)


def test_cpio_entries_are_aligned(tmp_path: Path) -> None:
    path = tmp_path / "a.cpio"
    with open(path, "wb") as f:
        _cpio_entry(f, "x", 0o100644, b"abc")
    assert path.stat().st_size % 4 == 0


def test_sources_one_line_and_deb822() -> None:
    one = "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n# deb-src x y z\n"
    assert parse_sources(one, deb822=False) == [("http://mirror.example/debian", ["bookworm"], "/k.gpg")]
    stanza = ("Types: deb deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n"
              "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\nTypes: deb-src\nURIs: http://o\n"
              "Suites: bookworm\n")
    assert parse_sources(stanza, deb822=True) == [
        ("http://m.example/debian", ["bookworm", "bookworm-updates"], "/usr/share/keyrings/k.gpg")]


def test_no_archive_and_empty_cache_says_how_to_give_a_kernel_by_path(tmp_path: Path, monkeypatch) -> None:
    if not shutil.which("apt-get"):
        pytest.skip("needs apt-get")
    monkeypatch.setenv("XDPTEST_CACHE", str(tmp_path / "cache"))
    # An archive nobody answers for: what a machine without access to the package registry sees.
    monkeypatch.setattr("xdptest.vm.kernels.host_debian_entries", lambda: [("http://127.0.0.1:9/debian", None)])
    monkeypatch.setattr("xdptest.vm.kernels.security_lines", lambda: [])
    monkeypatch.setattr("xdptest.vm.kernels.missing_tools", lambda names=(): [])
    with pytest.raises(KernelUnavailableError) as err:
        prepare(KernelSpec.parse("debian-6.12"))
    text = str(err.value)
    assert text.startswith("cannot obtain kernel debian-6.12: apt-get update")
    assert "--xdptest-kernel /path/to/boot/vmlinuz-RELEASE" in text
    assert "lib/modules/RELEASE" in text
    assert not (tmp_path / "cache/kernels/debian-6.12/current.json").exists()


def test_builder_uses_its_own_apt_configuration(tmp_path: Path) -> None:
    builder = DebianKernelBuilder(KernelSpec.parse("debian-6.12"), tmp_path, print)
    opts = " ".join(builder.apt_options())
    assert "Dir::Etc::SourceList=/dev/null" in opts
    assert f"Dir::State::Lists={tmp_path}/apt/debian-6.12/lists" in opts


def test_command_usage_errors(capsys) -> None:
    assert main(["--kernel", "debian-6.12"]) == 2
    assert "no COMMAND given" in capsys.readouterr().err
    assert main(["--kernel", "debian-9", "--", "true"]) == 2
    assert "use debian-5.10, debian-6.1, debian-6.12, debian-latest" in capsys.readouterr().err
    assert main(["--kernel", "debian-6.12", "--timeout", "0", "true"]) == 2
