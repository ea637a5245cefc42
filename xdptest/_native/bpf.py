"""The thin typed layer over libbpf.

It turns C pointers into small Python objects, bytes and ints, and negative errno values into
``OSError`` carrying the code (the public layer in :mod:`xdptest.bpf` turns those into the kit's
typed errors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from xdptest._native import check as _check
from xdptest._native import ffi, lib

BPF_PROG_TYPE_UNSPEC = 0
BPF_PROG_TYPE_XDP = 6
BPF_MAP_TYPE_XSKMAP = 17
BPF_F_XDP_HAS_FRAGS = 1 << 5  # load flag: the program takes multi-buffer frames (xdp.frags)
PERCPU_MAP_TYPES = frozenset({5, 6, 10, 21})  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
MAP_TYPE_NAMES = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps",
    13: "hash_of_maps", 14: "devmap", 15: "sockmap", 16: "cpumap", BPF_MAP_TYPE_XSKMAP: "xskmap", 18: "sockhash",
    22: "queue", 23: "stack", 25: "devmap_hash", 27: "ringbuf",
}
LOG_SIZE = 4 * 1024 * 1024


def check(ret: int, what: str) -> int:
    """``ret`` when not negative; otherwise a plain ``OSError`` with the code (the public layer
    in :mod:`xdptest.bpf` turns it into the kit's typed errors)."""
    return _check(ret, what, OSError)


def libbpf_version() -> str:
    return str(ffi.string(lib.xt_libbpf_version()).decode())


def take_messages() -> str:
    """libbpf's warnings and errors printed on this thread since the last call."""
    buf = ffi.new("char[]", 8192)
    n = lib.xt_libbpf_messages_take(buf, 8192)
    return bytes(ffi.buffer(buf, n)).decode(errors="replace")


def possible_cpus() -> int:
    return int(check(lib.xt_possible_cpus(), "counting possible CPUs"))


@dataclass(frozen=True)
class ProgramRef:
    name: str
    section: str
    type: int
    handle: Any  # struct bpf_program *

    @property
    def fd(self) -> int:
        return int(lib.xt_program_fd(self.handle))


@dataclass(frozen=True)
class MapRef:
    name: str
    fd: int  # negative before the object is loaded
    type: int
    key_size: int
    value_size: int
    max_entries: int
    internal: bool = False  # global data (.rodata, .data, .bss, .kconfig)
    handle: Any = field(default=None, compare=False, repr=False)


class NativeObject:
    """An opened (and later loaded) ``struct bpf_object``."""

    def __init__(self, path: str) -> None:
        self._log = ffi.new("char[]", LOG_SIZE)
        out = ffi.new("struct bpf_object **")
        take_messages()
        ret = lib.xt_obj_open(path.encode(), self._log, LOG_SIZE, out)
        if ret < 0:
            raise OSError(-ret, take_messages().strip() or os.strerror(-ret))
        self._obj: Any = out[0]

    def programs(self) -> list[ProgramRef]:
        found: list[ProgramRef] = []
        prog = lib.xt_obj_next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            found.append(ProgramRef(
                name=ffi.string(lib.xt_program_name(prog)).decode(),
                section=ffi.string(lib.xt_program_section(prog)).decode(),
                type=int(lib.xt_program_type(prog)),
                handle=prog,
            ))
            prog = lib.xt_obj_next_program(self._obj, prog)
        return found

    def set_autoload(self, program: ProgramRef, autoload: bool) -> None:
        check(lib.xt_program_set_autoload(program.handle, int(autoload)), "set_autoload")

    def set_type(self, program: ProgramRef, prog_type: int) -> ProgramRef:
        check(lib.xt_program_set_type(program.handle, prog_type), "set_type")
        return ProgramRef(program.name, program.section, prog_type, program.handle)

    def add_flags(self, program: ProgramRef, flags: int) -> None:
        check(lib.xt_program_add_flags(program.handle, flags), "set_flags")

    def set_offload_ifindex(self, ifindex: int) -> None:
        check(lib.xt_obj_set_offload_ifindex(self._obj, ifindex), "setting the offload device")

    def load(self) -> None:
        """Load into the kernel; on failure raise OSError with ``.log`` and ``.messages`` set."""
        take_messages()
        ret = lib.xt_obj_load(self._obj)
        log, self._log = self._log, None  # 4 MiB that only a load writes: freed now, not at collection
        if ret < 0:
            err = OSError(-ret, os.strerror(-ret))
            err.log = ffi.string(log).decode(errors="replace")  # type: ignore[attr-defined]
            err.messages = take_messages()  # type: ignore[attr-defined]
            raise err

    def maps(self, internal: bool = False) -> list[MapRef]:
        """The object's maps: the declared ones, or (``internal``) its global-data sections."""
        found: list[MapRef] = []
        m = lib.xt_obj_next_map(self._obj, ffi.NULL)
        while m != ffi.NULL:
            if bool(lib.xt_map_is_internal(m)) == internal:
                found.append(MapRef(
                    name=ffi.string(lib.xt_map_name(m)).decode(),
                    fd=int(lib.xt_map_fd(m)),
                    type=int(lib.xt_map_type(m)),
                    key_size=int(lib.xt_map_key_size(m)),
                    value_size=int(lib.xt_map_value_size(m)),
                    max_entries=int(lib.xt_map_max_entries(m)),
                    internal=internal,
                    handle=m,
                ))
            m = lib.xt_obj_next_map(self._obj, m)
        return found

    def btf(self) -> bytes:
        """The object's BTF (empty when it has none)."""
        size = ffi.new("unsigned int *")
        raw = lib.xt_obj_btf_raw(self._obj, size)
        return bytes(ffi.buffer(raw, size[0])) if raw != ffi.NULL else b""

    @staticmethod
    def initial_value(ref: MapRef) -> bytes:
        """A global-data section's contents as libbpf holds them (what a load would write)."""
        size = ffi.new("unsigned long *")
        data = lib.xt_map_initial_value(ref.handle, size)
        return bytes(ffi.buffer(data, size[0])) if data != ffi.NULL else bytes(ref.value_size)

    @staticmethod
    def set_initial_value(ref: MapRef, data: bytes) -> None:
        check(lib.xt_map_set_initial_value(ref.handle, data, len(data)), f"setting {ref.name}'s contents")

    @staticmethod
    def set_max_entries(ref: MapRef, max_entries: int) -> None:
        check(lib.xt_map_set_max_entries(ref.handle, max_entries), f"resizing {ref.name}")

    @staticmethod
    def pin_path(ref: MapRef) -> str | None:
        """Where libbpf will pin the map (``LIBBPF_PIN_BY_NAME``), or None."""
        path = lib.xt_map_pin_path(ref.handle)
        return ffi.string(path).decode() if path != ffi.NULL else None

    @staticmethod
    def set_pin_path(ref: MapRef, path: str) -> None:
        check(lib.xt_map_set_pin_path(ref.handle, path.encode()), f"pinning {ref.name} at {path}")

    @staticmethod
    def map_fd(ref: MapRef) -> int:
        return int(lib.xt_map_fd(ref.handle))

    def close(self) -> None:
        if self._obj is not None:
            lib.xt_obj_close(self._obj)
            self._obj = None
        self._log = None


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    value = ffi.new("char[]", value_size)
    ret = lib.xt_map_lookup(fd, key, value)
    if ret == -2:  # ENOENT
        return None
    check(ret, "map lookup")
    return bytes(ffi.buffer(value, value_size))


def map_update(fd: int, key: bytes, value: bytes, flags: int) -> None:
    check(lib.xt_map_update(fd, key, value, flags), "map update")


def map_delete(fd: int, key: bytes) -> bool:
    ret = lib.xt_map_delete(fd, key)
    if ret == -2:
        return False
    check(ret, "map delete")
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    out = ffi.new("char[]", key_size)
    ret = lib.xt_map_next_key(fd, key if key is not None else ffi.NULL, out)
    if ret == -2:
        return None
    check(ret, "map iteration")
    return bytes(ffi.buffer(out, key_size))


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str


def prog_info(fd: int) -> ProgInfo:
    info = ffi.new("struct xt_prog_info *")
    check(lib.xt_prog_info(fd, info), "reading program info")
    return ProgInfo(id=int(info.id), type=int(info.type), name=ffi.string(info.name).decode())


def xdp_link_create(prog_fd: int, ifindex: int, flags: int) -> int:
    """Attach through a BPF link (in the calling thread's namespace); the link's fd."""
    return check(lib.xt_xdp_link_create(prog_fd, ifindex, flags), "BPF_LINK_CREATE")


def prog_info_by_id(prog_id: int) -> str:
    """The name of a loaded program, or '' if it is gone or unreadable."""
    ret = lib.xt_prog_name_by_id(prog_id, _name_buf := ffi.new("char[16]"))
    return ffi.string(_name_buf).decode() if ret == 0 else ""


@dataclass(frozen=True)
class RawTestRun:
    retval: int
    duration_ns: int
    data: bytes


def prog_test_run(fd: int, data: bytes, repeat: int, ingress_ifindex: int | None,
                  rx_queue: int | None, out_size: int, flags: int = 0, batch_size: int = 0) -> RawTestRun:
    out = ffi.new("char[]", out_size)
    run = ffi.new("struct xt_test_run *")
    run.flags = flags
    run.batch_size = batch_size
    if ingress_ifindex is not None or rx_queue is not None:
        run.use_ctx = 1
        run.ingress_ifindex = ingress_ifindex or 0
        run.rx_queue_index = rx_queue or 0
    check(lib.xt_prog_test_run(fd, data, len(data), out, out_size, repeat, run), "BPF_PROG_TEST_RUN")
    size = min(int(run.data_size_out), out_size)
    return RawTestRun(int(run.retval), int(run.duration_ns), bytes(ffi.buffer(out, size)))
