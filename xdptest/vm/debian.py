"""Debian kernels: where they come from, which packages make them up, and netdevsim built for them.

The names and their archives (``DEBIAN_KERNELS``), the apt entries derived from the host's own, the
packages of a kernel as ``apt-cache show`` describes them (either layout), and the out-of-tree
build of netdevsim against a kernel's headers with the host's compiler (see :mod:`.kernels`).
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xdptest.vm.hostpkgs import KernelUnavailableError


@dataclass(frozen=True)
class DebianKernel:
    """Where a named Debian kernel comes from."""

    series: str | None  # "6.12"; None: the newest series the suites offer
    codename: str  # the Debian release whose archive has it
    suites: tuple[str, ...]  # suffixes of the codename: "" (the release itself), "-updates", ...
    security: bool  # also the release's security suite (from the host's security mirror)
    what: str  # for listings


DEBIAN_KERNELS: dict[str, DebianKernel] = {
    "debian-5.10": DebianKernel("5.10", "bullseye", ("",), True, "Debian 11 bullseye"),
    "debian-6.1": DebianKernel("6.1", "bookworm", ("", "-updates"), True, "Debian 12 bookworm"),
    "debian-6.12": DebianKernel("6.12", "bookworm", ("-backports",), False, "Debian 12 bookworm-backports"),
    "debian-latest": DebianKernel(None, "sid", ("",), False, "Debian unstable (sid), newest series"),
}
CODENAME = "bookworm"  # the host release whose apt entries name the mirror (others are accepted too)
DEBIAN_CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid")

HOST_CC = "gcc-12"  # the compiler netdevsim is built with, whatever the kernel was built with
# Kernel options set by a newer compiler's abilities, whose compiler flag the host's compiler may
# not know; with the option cleared on make's command line kbuild takes its own fallback.
CC_ABILITIES = (
    # -fmin-function-alignment (gcc 14): the fallback is -falign-functions, same alignment
    ("CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT", "-fmin-function-alignment=16"),
)


# --- which packages make up a Debian kernel --------------------------------------------------

@dataclass(frozen=True)
class KernelPackages:
    """The packages of one Debian kernel build, all of the same ``version``."""

    version: str  # "7.2.13-1"
    abi: str  # "7.2.13+deb14"
    series: str  # "7.2"
    image: tuple[str, ...]  # the packages that hold the image and the module tree
    headers: str
    common: str
    kbuild: str
    source: str

    @property
    def release(self) -> str:
        return f"{self.abi}-amd64"

    @property
    def names(self) -> list[str]:
        return [*self.image, self.headers, self.common, self.kbuild, self.source]


def _field(text: str, name: str) -> str:
    m = re.search(rf"^{name}: (.*)$", text, re.M)
    return m.group(1).strip() if m else ""


def _plain(what: str, detail: str) -> str:
    return f"{what} ({detail})"


def resolve_packages(show: Callable[[str], str | None], series: str | None,
                     message: Callable[[str, str], str] = _plain) -> KernelPackages:
    """The packages of the newest kernel the archive offers, from ``apt-cache show`` texts.

    ``show(package)`` returns the ``apt-cache show --no-all-versions`` text of a package, or None
    where the archive has no such package; ``message(what, detail)`` words the error where the
    archive has no such kernel. The layout is the archive's: a
    ``linux-binary-ABI-amd64`` package (image) with ``linux-modules-ABI-amd64`` (modules) and
    ``linux-base-ABI-amd64`` (module indexes), else ``linux-image-ABI-amd64-unsigned``.
    """
    meta = show("linux-headers-amd64") or ""
    version, depends = _field(meta, "Version"), _field(meta, "Depends")
    m = re.search(r"linux-headers-(\S+)-amd64\b", depends)
    found = re.match(r"(\d+\.\d+)\.", version)
    if not m or not found or (series is not None and found.group(1) != series):
        want = f"Linux {series}" if series else "linux-headers-amd64"
        raise KernelUnavailableError(2, message(f"the archive offers no {want} kernel", f"found {version or 'none'}"))
    abi = m.group(1)
    headers_name = f"linux-headers-{abi}-amd64"
    headers = _field(show(headers_name) or "", "Depends")
    kbuild = re.search(r"(linux-kbuild-[^\s,(]+)", headers)
    common = re.search(r"(linux-headers-[^\s,(]+-common)\b", headers)
    if not kbuild or not common:
        raise KernelUnavailableError(2, f"{headers_name} names no kbuild/common package")
    binary = show(f"linux-binary-{abi}-amd64")
    if binary is not None:
        image = [f"linux-binary-{abi}-amd64", f"linux-modules-{abi}-amd64"]
        base = re.search(r"(linux-base-[^\s,(]+-amd64)\b", _field(binary, "Depends"))
        if base:  # modules.builtin and modules.order
            image.append(base.group(1))
    elif show(f"linux-image-{abi}-amd64-unsigned") is not None:
        image = [f"linux-image-{abi}-amd64-unsigned"]
    else:
        image = [f"linux-image-{abi}-amd64"]
    return KernelPackages(version, abi, found.group(1), tuple(image), headers_name, common.group(1),
                          kbuild.group(1), f"linux-source-{found.group(1)}")


# --- the archive: apt sources derived from the host's ---------------------------------------------

def source_lines(policy: DebianKernel, main: Sequence[tuple[str, str | None]],
                 security: Sequence[tuple[str, str | None]]) -> list[str]:
    """The one-line apt entries for ``policy``, with the host's ``main`` and ``security`` mirrors."""
    lines = []
    for uri, signed_by in main:
        opts = f" [signed-by={signed_by}]" if signed_by else ""
        lines += [f"deb{opts} {uri} {policy.codename}{s} main" for s in policy.suites]
    if policy.security:
        mirrors = list(security) or [(uri.rstrip("/") + "-security", s) for uri, s in main
                                     if uri.rstrip("/").endswith("/debian")]
        for uri, signed_by in mirrors:
            opts = f" [signed-by={signed_by}]" if signed_by else ""
            lines.append(f"deb{opts} {uri} {policy.codename}-security main")
    return lines


# --- building netdevsim -------------------------------------------------------------------------

# kbuild programs that an out-of-tree module build runs; Debian's ``modpost`` and ``objtool`` are
# wrappers that run the ``.real-*`` program for the target.
HOST_PROGRAMS = {
    "fixdep": ("scripts/basic/fixdep",),
    "modpost": ("scripts/mod/modpost", "scripts/mod/modpost.real-lsb-64"),
    "objtool": ("tools/objtool/objtool", "tools/objtool/objtool.real-x86"),
}


def cannot_run_here(program: Path) -> bool:
    """A dynamically linked program whose libraries (versions) this host lacks."""
    try:
        with open(program, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return False
    except OSError:
        return False
    proc = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=False)
    return "not found" in proc.stdout + proc.stderr


def broken_host_programs(kbuild: Path) -> list[str]:
    """The kbuild programs (``HOST_PROGRAMS``) that do not run on this host."""
    return [name for name, paths in HOST_PROGRAMS.items()
            if any(cannot_run_here(kbuild / p) for p in paths if (kbuild / p).is_file())]


def cc_supports(cc: str, flag: str) -> bool:
    proc = subprocess.run([cc, "-Werror", flag, "-c", "-x", "c", "-o", os.devnull, "-"],
                          input="", capture_output=True, text=True, check=False)
    return proc.returncode == 0


def config_options(config: Path) -> dict[str, str]:
    out = {}
    with contextlib.suppress(OSError):
        for line in config.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("CONFIG_"):
                out[key] = value
    return out


def host_compiler() -> str:
    return HOST_CC if shutil.which(HOST_CC) else "gcc"


class NetdevsimBuild:
    """Builds netdevsim out of tree against unpacked Debian headers, with the host's compiler."""

    def __init__(self, tree: Path, release: str, kbuild: Path, src: Path, say: Callable[[str], None]) -> None:
        self.tree = tree
        self.release = release
        self.kbuild = kbuild
        self.src = src
        self.say = say
        self.cc = host_compiler()
        self.headers = tree / "usr/src" / f"linux-headers-{release}"
        makefile = self.headers / "Makefile"
        # The headers' Makefile names the -common tree (and KBUILD_OUTPUT) by absolute path: ours.
        text = makefile.read_text()
        text = re.sub(r"(^include\s+|^KBUILD_OUTPUT\s*:?=\s*)/usr/src/", rf"\g<1>{tree}/usr/src/", text, flags=re.M)
        makefile.write_text(text)

    def make_args(self) -> list[str]:
        # CC on the command line overrides the compiler the headers name (gcc-10 for bullseye,
        # gcc-16 for sid: not on this host); the kernel's options that rest on abilities of that
        # compiler which ours lacks are cleared, so kbuild uses its fallback for them.
        config = config_options(self.headers / ".config")
        cleared = [f"{opt}=" for opt, flag in CC_ABILITIES if config.get(opt) == "y" and not cc_supports(self.cc, flag)]
        return ["make", "-s", "-C", str(self.headers), f"CC={self.cc}", f"HOSTCC={self.cc}",
                # module BTF needs pahole (and the same version as the kernel's); netdevsim works without it
                "CONFIG_DEBUG_INFO_BTF_MODULES=", *cleared, f"-j{os.cpu_count() or 2}"]

    def _check(self, argv: list[str], what: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise KernelUnavailableError(5, f"building netdevsim for {self.release}: {what} failed:\n{tail}")
        return proc.stdout

    def build(self) -> Path:
        mod = self.src / "drivers/net/netdevsim"
        argv = [*self.make_args(), f"M={mod}", "CONFIG_NETDEVSIM=m", "modules"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        ko = mod / "netdevsim.ko"
        if proc.returncode != 0 or not ko.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            errors = [ln for ln in lines if "error" in ln.lower()]
            tail = "\n".join((errors or lines)[-15:])
            raise KernelUnavailableError(5, f"building netdevsim for {self.release} failed:\n{tail}")
        return ko

    def rebuild_host_programs(self, names: Sequence[str]) -> None:
        """Rebuild kbuild programs from the kernel source with the host's compiler and C library.

        Debian's kbuild package for a newer release is linked against a newer C library than
        the host's; fixdep, modpost and objtool are plain C programs (objtool with libelf).
        """
        self.say(f"xdptest-vm: rebuilding {', '.join(names)} for this host (kbuild's need a newer C library)")
        src, cc = self.src, self.cc
        out = src / ".host-programs"
        out.mkdir(exist_ok=True)
        if "fixdep" in names:
            self._check([cc, "-O2", "-o", str(out / "fixdep"), str(src / "scripts/basic/fixdep.c")], "fixdep")
            self._install(out / "fixdep", "fixdep")
        if "modpost" in names:
            self._build_modpost(out)
            self._install(out / "modpost", "modpost")
        if "objtool" in names:
            self._check(["make", "-s", "-C", str(src / "tools/objtool"), f"HOSTCC={cc}", f"CC={cc}",
                         "LD=ld", "HOSTLD=ld", f"-j{os.cpu_count() or 2}"], "objtool (needs libelf-dev)")
            self._install(src / "tools/objtool/objtool", "objtool")

    def _install(self, built: Path, name: str) -> None:
        for rel in HOST_PROGRAMS[name]:
            path = self.kbuild / rel
            if path.exists() or path.is_symlink():
                path.unlink()
        shutil.copy2(built, self.kbuild / HOST_PROGRAMS[name][0])

    def _build_modpost(self, out: Path) -> None:
        cc, mod = self.cc, self.src / "scripts/mod"
        # devicetable-offsets.h: struct offsets of the kernel's device tables, as kbuild makes it
        work = out / "offsets"
        work.mkdir(exist_ok=True)
        shutil.copy2(mod / "devicetable-offsets.c", work)
        (work / "Makefile").write_text("\n")
        self._check([*self.make_args(), f"M={work}", "devicetable-offsets.s"], "devicetable-offsets")
        (mod / "devicetable-offsets.h").write_text(offsets_header(
            (work / "devicetable-offsets.s").read_text(), "__DEVICETABLE_OFFSETS_H__"))
        # elfconfig.h: the target's ELF class and byte order, from an object of the host's compiler
        self._check([cc, "-c", "-o", str(out / "empty.o"), str(mod / "empty.c")], "empty.o")
        self._check([cc, "-O2", "-o", str(out / "mk_elfconfig"), str(mod / "mk_elfconfig.c")], "mk_elfconfig")
        with open(out / "empty.o", "rb") as obj:
            proc = subprocess.run([str(out / "mk_elfconfig")], stdin=obj, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KernelUnavailableError(5, f"mk_elfconfig failed: {proc.stderr.strip()}")
        (mod / "elfconfig.h").write_text(proc.stdout)
        sources = [str(p) for p in sorted(mod.glob("*.c"))
                   if p.name not in ("mk_elfconfig.c", "empty.c", "devicetable-offsets.c")]
        includes = ["-I", str(mod)] + (["-I", str(self.src / "scripts/include")]
                                       if (self.src / "scripts/include").is_dir() else [])
        self._check([cc, "-O2", *includes, "-o", str(out / "modpost"), *sources], "modpost")


def offsets_header(asm: str, guard: str) -> str:
    """What kbuild's ``filechk_offsets`` makes of ``.ascii "->NAME VALUE COMMENT"`` lines."""
    lines = [f"#ifndef {guard}", f"#define {guard}", "/*", " * DO NOT MODIFY.", " *",
             " * This file was generated by Kbuild", " */", ""]
    for m in re.finditer(r'^\s*\.ascii\s*"->(.*)"', asm, re.M):
        text = m.group(1)
        if text.startswith("#"):
            lines.append(f"/* {text[1:]} */")
            continue
        parts = text.split(" ", 2)
        if len(parts) == 3:
            lines.append(f"#define {parts[0]} {parts[1].lstrip('$#')} /* {parts[2]} */")
    return "\n".join([*lines, "", "#endif"]) + "\n"


def parse_sources(text: str, deb822: bool) -> list[tuple[str, list[str], str | None]]:
    """(URI, suites, signed-by) for each ``deb`` entry in one apt sources file."""
    out: list[tuple[str, list[str], str | None]] = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                out.append((uri, fields.get("suites", "").split(), _keyring(fields.get("signed-by"))))
        return out
    for line in text.splitlines():
        m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
            out.append((m.group(2), [m.group(3)], _keyring(signed.group(1) if signed else None)))
    return out


def _keyring(value: str | None) -> str | None:
    """A Signed-By keyring path (an inline key is left to apt's default keyrings)."""
    return value if value and value.startswith("/") else None


def debian_mirrors(entries: Sequence[tuple[str, list[str], str | None]],
                   security: bool = False) -> list[tuple[str, str | None]]:
    """(URI, signed-by) of the entries for a Debian release (``security``: its security suite).

    The host's own release (``CODENAME``) comes first where other releases are named too.
    """
    seen: list[tuple[str, str | None]] = []
    for preferred in (True, False):
        for uri, suites, signed in entries:
            names = [s.removesuffix("-security") for s in suites if s.endswith("-security") == security]
            if not security:
                names = [s for s in names if s in DEBIAN_CODENAMES]
            if (CODENAME in names) != preferred or not any(n in DEBIAN_CODENAMES for n in names):
                continue
            if (uri, signed) not in seen:
                seen.append((uri, signed))
    return seen


def first_dir(*paths: Path) -> Path:
    for path in paths:
        if path.is_dir():
            return path
    raise KernelUnavailableError(2, f"the kernel package has no module tree ({paths[0]})")


def first_file(*paths: Path) -> Path:
    for path in paths:
        if path.is_file():
            return path
    raise KernelUnavailableError(2, f"the kernel package has no kernel image ({paths[0]})")


def decompress_module(path: Path) -> bytes:
    """The ELF content of a module file (``.ko``, ``.ko.xz``, ``.ko.gz`` or ``.ko.zst``)."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        try:
            proc = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=False)
        except FileNotFoundError:
            raise KernelUnavailableError(2, f"{path}: decompressing needs zstd (apt-get install zstd)") from None
        if proc.returncode != 0:
            raise KernelUnavailableError(5, f"{path}: zstd -d failed ({proc.stderr.decode(errors='replace')})")
        return proc.stdout
    return data
