"""Just enough of BTF to name a program's global variables and type their values.

A BPF object's ``.rodata``, ``.data`` and ``.bss`` sections are described in its BTF as a
``DATASEC`` whose entries are ``VAR``s at byte offsets. :func:`section_variables` lists them and
:class:`Variable` turns a variable's bytes into Python and back: an ``int`` for integer, enum and
pointer types, ``bytes`` for ``char``/``__u8`` arrays and anything else (structs, floats), a
``list`` for arrays of integers.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Any

from xdptest.errors import ConfigError

BTF_MAGIC = 0xEB9F
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
# Bytes that follow each kind's common header: a fixed part and a part per vlen entry.
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
          FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0), ENUM64: (0, 12)}
INT_SIGNED, INT_BOOL = 1, 4


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    size_or_type: int  # a size for INT, ENUM, STRUCT, DATASEC...; a type id for the others
    info: int
    extra: bytes  # the kind's own data (see _EXTRA)


class Btf:
    """The types of one BTF blob, by id (1-based, as the kernel numbers them)."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < 24:
            raise ConfigError("the object's BTF is too short to read")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
        if magic != BTF_MAGIC:
            raise ConfigError(f"the object's BTF has magic {magic:#x}, not {BTF_MAGIC:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", raw, 8)
        types = raw[hdr_len + type_off: hdr_len + type_off + type_len]
        self._strings = raw[hdr_len + str_off: hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, "void", 0, 0, b"")]
        pos = 0
        while pos < len(types):
            name_off, info, size_or_type = struct.unpack_from("<III", types, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, per = _EXTRA.get(kind, (0, 0))
            end = pos + 12 + fixed + per * vlen
            self.types.append(BtfType(kind, self._string(name_off), size_or_type, info, types[pos + 12:end]))
            pos = end

    def _string(self, offset: int) -> str:
        end = self._strings.index(b"\0", offset)
        return self._strings[offset:end].decode(errors="replace")

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs and qualifiers (``const volatile __u32`` is an INT)."""
        t = self.types[type_id]
        while t.kind in _MODIFIERS:
            t = self.types[t.size_or_type]
        return t

    def size_of(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind == ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", t.extra)
            return int(self.size_of(elem) * nelems)
        if t.kind == PTR:
            return 8
        return t.size_or_type

    def datasec(self, name: str) -> BtfType | None:
        return next((t for t in self.types if t.kind == DATASEC and t.name == name), None)


@dataclass(frozen=True)
class Variable:
    """One global variable: its section, where it lies there, and how its bytes read."""

    name: str
    section: str  # ".rodata", ".data", ".bss", ".data.custom"...
    offset: int
    size: int
    type_name: str
    _btf: Btf
    _type_id: int

    @property
    def read_only(self) -> bool:
        """``.rodata`` is frozen once loaded: set it before ``load()``."""
        return self.section.startswith(".rodata")

    def decode(self, raw: bytes) -> Any:
        return _decode(self._btf, self._type_id, raw[self.offset:self.offset + self.size])

    def encode(self, value: Any) -> bytes:
        return _encode(self._btf, self._type_id, value, self.name)


def _int_shape(t: BtfType) -> tuple[int, bool]:
    """(size, signed) of an INT or ENUM type."""
    if t.kind == INT:
        encoding = struct.unpack_from("<I", t.extra)[0] >> 24
        return t.size_or_type, bool(encoding & INT_SIGNED)
    return t.size_or_type, bool(t.info >> 31)  # enums: kind_flag says signed


def _decode(btf: Btf, type_id: int, raw: bytes) -> Any:
    t = btf.resolve(type_id)
    if t.kind in (INT, ENUM, ENUM64):
        _, signed = _int_shape(t)
        return int.from_bytes(raw, sys.byteorder, signed=signed)
    if t.kind == PTR:
        return int.from_bytes(raw, sys.byteorder)
    if t.kind == ARRAY:
        elem, _index, nelems = struct.unpack_from("<III", t.extra)
        elem_t, size = btf.resolve(elem), btf.size_of(elem)
        if elem_t.kind in (INT, ENUM, ENUM64, PTR) and size > 1:
            return [_decode(btf, elem, raw[i * size:(i + 1) * size]) for i in range(nelems)]
    return bytes(raw)


def _encode(btf: Btf, type_id: int, value: Any, name: str) -> bytes:
    t = btf.resolve(type_id)
    size = btf.size_of(type_id)
    if t.kind in (INT, ENUM, ENUM64, PTR) and isinstance(value, int):
        signed = _int_shape(t)[1] if t.kind != PTR else False
        try:
            return int(value).to_bytes(size, sys.byteorder, signed=signed)
        except OverflowError:
            raise ConfigError(f"variable {name}: {value} does not fit its {size}-byte "
                              f"{'signed' if signed else 'unsigned'} type") from None
    if t.kind == ARRAY and isinstance(value, (list, tuple)):
        elem, _index, nelems = struct.unpack_from("<III", t.extra)
        if len(value) > nelems:
            raise ConfigError(f"variable {name}: {len(value)} values for an array of {nelems}")
        items = [_encode(btf, elem, v, f"{name}[{i}]") for i, v in enumerate(value)]
        return b"".join(items).ljust(size, b"\0")
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) > size:
            raise ConfigError(f"variable {name}: {len(data)} bytes do not fit its {size}")
        return data.ljust(size, b"\0")
    raise ConfigError(f"variable {name}: cannot store {value!r} ({type(value).__name__}) in its "
                      f"{size}-byte {_kind_name(t.kind)}; give an int, a list or bytes")


def _kind_name(kind: int) -> str:
    return {INT: "integer", PTR: "pointer", ARRAY: "array", STRUCT: "struct", UNION: "union",
            ENUM: "enum", ENUM64: "enum", FLOAT: "float"}.get(kind, "value")


def section_variables(btf: Btf, section: str) -> list[Variable]:
    """The variables of one global-data section (empty when the BTF does not describe it)."""
    sec = btf.datasec(section)
    if sec is None:
        return []
    out: list[Variable] = []
    for i in range(sec.info & 0xFFFF):
        var_id, offset, size = struct.unpack_from("<III", sec.extra, i * 12)
        var = btf.types[var_id]
        if var.kind != VAR:
            continue
        out.append(Variable(var.name, section, offset, size, btf.resolve(var.size_or_type).name or
                            _kind_name(btf.resolve(var.size_or_type).kind), btf, var.size_or_type))
    return out
