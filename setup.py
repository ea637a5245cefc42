"""Build glue that pyproject.toml cannot express: the cffi extension and the BPF objects.

``build_py`` compiles every ``bpf/*.bpf.c`` with clang into ``xdptest/bpf-objects/*.bpf.o`` inside the
package (in the source tree for editable installs), so the built-in programs ship with the kit.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# The package's __init__ is lazy, so these imports need nothing beyond the standard library.
sys.path.insert(0, str(ROOT))
from xdptest._toolchain import BUILTIN_OBJECTS, compile_bpf  # noqa: E402
from xdptest.errors import ToolchainError  # noqa: E402

sys.path.pop(0)


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            out_dir = ROOT / "xdptest" / BUILTIN_OBJECTS
        else:
            out_dir = Path(self.build_lib) / "xdptest" / BUILTIN_OBJECTS
        out_dir.mkdir(parents=True, exist_ok=True)
        for source in sorted((ROOT / "bpf").glob("*.bpf.c")):
            target = out_dir / (source.name[: -len(".c")] + ".o")
            try:
                compile_bpf(source, target)
            except ToolchainError as exc:
                raise SystemExit(f"xdptest build: {exc}") from None


setup(
    cmdclass={"build_py": BuildPyWithBpf},
    cffi_modules=["cnative/build_native.py:ffibuilder"],
)
