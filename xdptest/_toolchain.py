"""Finding clang and compiling BPF C sources (used by the build and at run time).

Standard library only: ``setup.py`` imports this module before the kit's dependencies exist.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from xdptest.errors import CompileError, ToolchainError

# Where the built-in programs' objects live inside the package: not a name Python could import,
# so setuptools ships it as plain package data.
BUILTIN_OBJECTS = "bpf-objects"
# What the kit adds to every BPF compile: headers clang lacks for -target bpf (see its README).
KIT_INCLUDE = Path(__file__).resolve().parent / "bpf-include"
_TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc", "riscv64": "riscv"}
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-Wall", "-Wno-unused-value",
              f"-D__TARGET_ARCH_{_TARGET_ARCH.get(platform.machine(), 'x86')}"]
_VMLINUX_INCLUDE = re.compile(rb'^\s*#\s*include\s*[<"]vmlinux\.h[>"]', re.MULTILINE)
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")


def cache_dir() -> Path:
    """The per-user cache of compiled programs and generated headers (``$XDPTEST_CACHE``)."""
    return Path(os.environ.get("XDPTEST_CACHE", Path(tempfile.gettempdir()) / f"xdptest-{os.getuid()}"))
_CLANG_NAMES = ["clang", *(f"clang-{v}" for v in range(21, 13, -1))]


def find_clang() -> str:
    """Return the clang to use: ``$XDPTEST_CLANG``, else ``clang``, else the newest ``clang-N``."""
    wanted = os.environ.get("XDPTEST_CLANG")
    if wanted:
        path = shutil.which(wanted)
        if not path:
            raise ToolchainError(f"XDPTEST_CLANG={wanted!r} is not an executable on PATH")
        return path
    for name in _CLANG_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ToolchainError("clang not found (needed to compile BPF programs): apt-get install clang")


def _multiarch_include() -> list[str]:
    """Debian keeps asm/types.h under a multiarch directory that `clang -target bpf` skips."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    triplet = ""
    if gcc:
        try:
            triplet = subprocess.run(
                [gcc, "-print-multiarch"], capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            triplet = ""
    if not triplet:
        machine = os.uname().machine
        triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, "")
    path = Path("/usr/include") / triplet
    return [f"-I{path}"] if triplet and path.is_dir() else []


def bpf_include_flags(extra: list[str] | None = None) -> list[str]:
    flags = _multiarch_include()
    if not any(Path(p, "bpf", "bpf_helpers.h").exists() for p in ["/usr/include", "/usr/local/include"]):
        raise ToolchainError(
            "bpf/bpf_helpers.h not found (needed to compile BPF programs): apt-get install libbpf-dev"
        )
    return flags + list(extra or [])


def vmlinux_header(btf: Path = VMLINUX_BTF) -> Path:
    """``vmlinux.h`` for the running kernel, generated once from its BTF with bpftool and cached
    by the BTF's content (a new kernel gets a new header)."""
    if not btf.exists():
        raise ToolchainError(f"{btf} is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF), so "
                             "there is no vmlinux.h to generate; include UAPI headers instead")
    digest = hashlib.sha256(btf.read_bytes()).hexdigest()[:16]
    header = cache_dir() / "vmlinux" / f"{platform.release()}-{digest}" / "vmlinux.h"
    if header.exists():
        return header
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        raise ToolchainError("bpftool not found (needed to generate vmlinux.h from the kernel's BTF): "
                             "apt-get install bpftool")
    proc = subprocess.run([bpftool, "btf", "dump", "file", str(btf), "format", "c"], capture_output=True,
                          check=False, timeout=120)
    if proc.returncode != 0 or not proc.stdout:
        raise ToolchainError(f"bpftool could not dump {btf}: {proc.stderr.decode(errors='replace').strip()}")
    header.parent.mkdir(parents=True, exist_ok=True)
    tmp = header.with_name(f".vmlinux.h.{os.getpid()}.tmp")
    tmp.write_bytes(proc.stdout)
    os.replace(tmp, header)
    return header


def wants_vmlinux_h(source: Path, include_dirs: Sequence[Path]) -> bool:
    """The source includes vmlinux.h and neither its directory nor ``include_dirs`` has one."""
    if not _VMLINUX_INCLUDE.search(source.read_bytes()):
        return False
    return not any((d / "vmlinux.h").exists() for d in [source.parent, *include_dirs])


def compile_flags(source: Path, include_dirs: Sequence[Path] = (), cflags: Sequence[str] = ()) -> list[str]:
    """Every flag but the file names: the kit's, the user's (after, so they win), the includes."""
    dirs = [*include_dirs, source.parent]
    if wants_vmlinux_h(source, include_dirs):
        dirs.append(vmlinux_header().parent)
    includes = [f"-I{d}" for d in dirs]
    return [*BPF_CFLAGS, *bpf_include_flags(includes), "-idirafter", str(KIT_INCLUDE), *cflags]


def first_error(output: str) -> str:
    """clang's first error line (``file:line:col: error: ...``), or its first line."""
    lines = [line for line in output.splitlines() if line.strip()]
    return next((line for line in lines if ": error: " in line or "fatal error" in line),
                lines[0] if lines else "no output")


def compile_bpf(source: Path, target: Path, include_dirs: Sequence[Path] = (), cflags: Sequence[str] = ()) -> Path:
    """Compile one BPF C file into an ELF object with clang; on failure raise ``CompileError``
    whose message leads with the first error (file, line, what) and whose ``output`` is clang's."""
    clang = find_clang()
    flags = compile_flags(source, include_dirs, cflags)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cmd = [clang, *flags, "-c", str(source), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        more = len(proc.stderr.strip().splitlines()) - 1
        raise CompileError(f"clang could not compile {source}: {first_error(proc.stderr)}"
                           + (f" (and {more} more lines of clang's output in .output)" if more > 0 else ""),
                           proc.stderr)
    os.replace(tmp, target)
    return target
