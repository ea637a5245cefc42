"""The maps of a BPF object: typed lookups, updates and iteration (see :class:`XdpMap`)."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from xdptest._native import bpf as _libbpf
from xdptest.errors import ConfigError, MapError, MapNotFoundError

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

__all__ = ["BPF_ANY", "BPF_EXIST", "BPF_NOEXIST", "MapTable", "XdpMap"]


class XdpMap:
    """A map of a loaded object. Keys and values are ints (for sizes 1, 2, 4, 8) or bytes.

    Per-CPU maps return a list with one value per possible CPU; ``update`` on them takes such a
    list or a single value (written to every CPU).
    """

    def __init__(self, ref: _libbpf.MapRef, owner: XdpProgram) -> None:
        self.name = ref.name
        self.fd = ref.fd
        self.type = ref.type
        self.key_size = ref.key_size
        self.value_size = ref.value_size
        self._max_entries = ref.max_entries
        self._ref = ref
        self.per_cpu = ref.type in _libbpf.PERCPU_MAP_TYPES
        self._ncpus = _libbpf.possible_cpus() if self.per_cpu else 1
        self._stride = (self.value_size + 7) // 8 * 8 if self.per_cpu else self.value_size
        # Weak: a program and its maps would otherwise form a cycle that keeps libbpf's object
        # (BTF, ELF data) alive until the cyclic collector happens to run.
        self._owner = weakref.proxy(owner)

    @property
    def type_name(self) -> str:
        return _libbpf.MAP_TYPE_NAMES.get(self.type, str(self.type))

    def _encode(self, what: str, value: int | bytes, size: int) -> bytes:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return value.to_bytes(size, sys.byteorder, signed=value < 0)
            except OverflowError:
                raise ConfigError(f"map {self.name}: {what} {value} does not fit in {size} bytes") from None
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) != size:
                raise ConfigError(f"map {self.name}: {what} has {len(raw)} bytes, the map's {what} size is {size}")
            return raw
        raise ConfigError(f"map {self.name}: {what} must be int or bytes, got {type(value).__name__}")

    @staticmethod
    def _decode(raw: bytes) -> int | bytes:
        return int.from_bytes(raw, sys.byteorder) if len(raw) in (1, 2, 4, 8) else raw

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @max_entries.setter
    def max_entries(self, entries: int) -> None:
        """Resize the map: between ``XdpProgram.open()`` and ``load()`` only."""
        if self._owner.loaded:
            raise ConfigError(f"map {self.name}: max_entries is fixed once the object is loaded; set it "
                              "between XdpProgram.open() and load()")
        if not isinstance(entries, int) or isinstance(entries, bool) or not 1 <= entries < 2**32:
            raise ConfigError(f"map {self.name}: max_entries must be a positive integer, got {entries!r}")
        _libbpf.NativeObject.set_max_entries(self._ref, entries)
        self._max_entries = entries

    def _loaded(self) -> None:
        """The object was loaded: the map exists in the kernel now."""
        self.fd = _libbpf.NativeObject.map_fd(self._ref)

    def _fd(self) -> int:
        self._owner._check_open()
        if self.fd < 0:
            raise ConfigError(f"map {self.name} is not in the kernel yet: load() the program first")
        return self.fd

    def lookup(self, key: int | bytes) -> Any:
        """The value for ``key`` (list of per-CPU values for per-CPU maps), or None if absent."""
        try:
            raw = _libbpf.map_lookup(self._fd(), self._encode("key", key, self.key_size),
                                     self._stride * self._ncpus)
        except OSError as exc:
            raise MapError(exc.errno, f"map {self.name}: lookup of {key!r}: {exc.strerror}") from None
        if raw is None:
            return None
        if not self.per_cpu:
            return self._decode(raw)
        return [self._decode(raw[i * self._stride: i * self._stride + self.value_size])
                for i in range(self._ncpus)]

    def update(self, key: int | bytes, value: Any, flags: int = BPF_ANY) -> None:
        if self.per_cpu:
            values = value if isinstance(value, (list, tuple)) else [value] * self._ncpus
            if len(values) != self._ncpus:
                raise ConfigError(f"map {self.name}: per-CPU update needs {self._ncpus} values, got {len(values)}")
            raw = b"".join(self._encode("value", v, self.value_size).ljust(self._stride, b"\0") for v in values)
        else:
            raw = self._encode("value", value, self.value_size)
        try:
            _libbpf.map_update(self._fd(), self._encode("key", key, self.key_size), raw, flags)
        except OSError as exc:
            raise MapError(exc.errno, f"map {self.name}: update of {key!r}: {exc.strerror}") from None

    def delete(self, key: int | bytes) -> bool:
        """Delete ``key``; return False when it was absent."""
        try:
            return _libbpf.map_delete(self._fd(), self._encode("key", key, self.key_size))
        except OSError as exc:
            raise MapError(exc.errno, f"map {self.name}: delete of {key!r}: {exc.strerror}") from None

    def keys(self) -> Iterator[int | bytes]:
        key: bytes | None = None
        while True:
            try:
                key = _libbpf.map_next_key(self._fd(), key, self.key_size)
            except OSError as exc:
                raise MapError(exc.errno, f"map {self.name}: iteration: {exc.strerror}") from None
            if key is None:
                return
            yield self._decode(key)

    def items(self) -> list[tuple[int | bytes, Any]]:
        out = []
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                out.append((key, value))
        return out

    def sum(self, key: int | bytes) -> Any:
        """For per-CPU maps of integers: the total over CPUs (0 when the key is absent)."""
        values = self.lookup(key)
        if values is None:
            return 0
        return sum(values) if isinstance(values, list) else values

    def __repr__(self) -> str:
        return f"XdpMap({self.name!r}, {self.type_name}, key={self.key_size}, value={self.value_size})"


class MapTable(dict[str, XdpMap]):
    def __missing__(self, key: str) -> XdpMap:
        raise MapNotFoundError(f"no map {key!r}; maps: {', '.join(sorted(self)) or 'none'}")
