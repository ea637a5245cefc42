"""A program's global variables by name: ``prog.variables["name"]``.

libbpf keeps each global-data section (``.rodata``, ``.data``, ``.bss``, and custom ``.data.*`` /
``.rodata.*``) in an internal single-entry array map. Before load, :class:`Variables` edits the
contents libbpf will load (so ``const volatile`` configuration is set here); after load it reads
the live map and writes ``.data``/``.bss`` through it (``.rodata`` is frozen by then).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from xdptest._native import bpf as _libbpf
from xdptest.btf import Btf, Variable, section_variables
from xdptest.errors import ConfigError, MapError

_KEY0 = bytes(4)


@dataclass
class _Section:
    ref: _libbpf.MapRef
    pending: bytearray  # before load: what will be loaded
    changed: bool = False
    fd: int = -1  # after load: the internal map


def section_name(map_name: str) -> str:
    """libbpf names an internal map after the object and the section ("prog.rodata")."""
    return map_name[map_name.index("."):] if "." in map_name else map_name


class Variables(Mapping[str, Any]):
    """Global variables of one object: read any, write ``.data``/``.bss`` any time and
    ``.rodata`` until load. Unknown names raise ``ConfigError`` listing the known ones."""

    def __init__(self, native: _libbpf.NativeObject, owner: str) -> None:
        self._owner = owner
        self._sections: dict[str, _Section] = {}
        self._vars: dict[str, Variable] = {}
        raw = native.btf()
        btf = Btf(raw) if raw else None
        for ref in native.maps(internal=True):
            name = section_name(ref.name)
            if name.startswith(".kconfig") or btf is None:
                continue
            self._sections[name] = _Section(ref, bytearray(native.initial_value(ref)))
            for var in section_variables(btf, name):
                self._vars[var.name] = var
        self.loaded = False

    def _get(self, name: str) -> Variable:
        var = self._vars.get(name)
        if var is None:
            known = ", ".join(f"{v.name} ({v.section})" for v in self._vars.values()) or "none"
            raise ConfigError(f"{self._owner} has no global variable {name!r}; its variables: {known}")
        return var

    def _contents(self, section: _Section) -> bytes:
        if not self.loaded:
            return bytes(section.pending)
        raw = _libbpf.map_lookup(section.fd, _KEY0, section.ref.value_size)
        if raw is None:
            raise MapError(2, f"{section.ref.name}: the global-data map has no entry")
        return raw

    def __getitem__(self, name: str) -> Any:
        var = self._get(name)
        return var.decode(self._contents(self._sections[var.section]))

    def __setitem__(self, name: str, value: Any) -> None:
        var = self._get(name)
        data = var.encode(value)
        section = self._sections[var.section]
        if not self.loaded:
            section.pending[var.offset:var.offset + var.size] = data
            section.changed = True
            return
        if var.read_only:
            raise ConfigError(f"{name} is in {var.section}, which the kernel froze at load: set it before "
                              "load (XdpProgram.open(...).variables, or load(..., rodata={...}))")
        contents = bytearray(self._contents(section))
        contents[var.offset:var.offset + var.size] = data
        try:
            _libbpf.map_update(section.fd, _KEY0, bytes(contents), 0)
        except OSError as exc:
            raise MapError(exc.errno, f"writing {name}: {exc.strerror}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def info(self, name: str) -> Variable:
        """Where a variable lies and how it reads (section, offset, size, type name)."""
        return self._get(name)

    def set_rodata(self, values: Mapping[str, Any]) -> None:
        """Set read-only (``const volatile``) configuration before load; other names are refused."""
        for name, value in values.items():
            if not self._get(name).read_only:
                raise ConfigError(f"rodata={{{name!r}: ...}}: {name} is in {self._vars[name].section}, not "
                                  ".rodata; set it through prog.variables")
            self[name] = value

    def _before_load(self, native: _libbpf.NativeObject) -> None:
        for section in self._sections.values():
            if section.changed:
                native.set_initial_value(section.ref, bytes(section.pending))

    def _after_load(self) -> None:
        for section in self._sections.values():
            section.fd = _libbpf.NativeObject.map_fd(section.ref)
        self.loaded = True
