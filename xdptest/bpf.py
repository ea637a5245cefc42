"""XDP programs: load BPF objects with libbpf, attach them with netlink, read and write their maps,
and run them on a packet without any topology (BPF_PROG_TEST_RUN).

``XdpProgram.load`` takes a built-in name (``pass``, ``drop``, ``redirect``, ``tx``, ``count``),
the path of a compiled object, or the path of a ``.c`` source that it compiles with clang.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import hashlib
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union

from xdptest import caps, veth_peer
from xdptest._native import bpf as _libbpf
from xdptest._toolchain import BUILTIN_OBJECTS, cache_dir, compile_bpf, compile_flags
from xdptest.errors import (
    AttachError,
    BpfObjectError,
    ClosedError,
    ConfigError,
    InterfaceNotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ProgramNotFoundError,
    VerifierError,
)
from xdptest.maps import MapTable, XdpMap
from xdptest.netns import iproute
from xdptest.nsexec import run_in_netns
from xdptest.pins import PinRoot, process_root
from xdptest.teardown import run_all
from xdptest.variables import Variables

if TYPE_CHECKING:
    from scapy.packet import Packet

    from xdptest.netns import Endpoint, Netns

BUILTIN_PROGRAMS = ("pass", "drop", "redirect", "tx", "count")
AttachMode = Literal["native", "generic", "offload"]
Target = Union["Endpoint", str, int]

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
_MODE_FLAGS = {"generic": XDP_FLAGS_SKB_MODE, "native": XDP_FLAGS_DRV_MODE, "offload": XDP_FLAGS_HW_MODE}
# IFLA_XDP_ATTACHED, as the kernel's number or as pyroute2's name for it.
_ATTACHED_NAMES: dict[object, str | None] = {
    0: None, 1: "native", 2: "generic", 3: "offload", 4: "multi",
    None: None, "xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload", "xdpmulti": "multi",
}



class XdpAction(IntEnum):
    """The verdicts of an XDP program, with the kernel's values."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


def builtin_program_path(name: str) -> Path:
    """The compiled object of a built-in program shipped in the package."""
    if name not in BUILTIN_PROGRAMS:
        raise ProgramNotFoundError(
            f"no built-in program {name!r}; built-ins are: {', '.join(BUILTIN_PROGRAMS)}"
        )
    path = Path(__file__).resolve().parent / BUILTIN_OBJECTS / f"{name}.bpf.o"
    if not path.exists():
        raise BpfObjectError(
            f"built-in program {name!r} is missing ({path}): the package was built without clang; "
            "reinstall with `pip install .` after `apt-get install clang libbpf-dev`"
        )
    return path


def _compiled_source(source: Path, include_dirs: Sequence[Path], cflags: Sequence[str]) -> Path:
    """Compile a .c source into a per-user cache and return the object; compiled again when the
    source, a header beside it or in ``include_dirs``, or the flags change."""
    digest = hashlib.sha256()
    for path in [source, *sorted(h for d in {source.parent, *include_dirs} for h in d.glob("*.h"))]:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    digest.update("\0".join(compile_flags(source, include_dirs, cflags)).encode())
    target = cache_dir() / "bpf" / f"{source.stem}-{digest.hexdigest()[:16]}.o"
    if not target.exists():
        compile_bpf(source, target, include_dirs, cflags)
    return target


def _resolve_path(path_or_builtin: str | os.PathLike[str], include_dirs: Sequence[str | os.PathLike[str]] = (),
                  cflags: Sequence[str] = ()) -> Path:
    text = os.fspath(path_or_builtin)
    if text in BUILTIN_PROGRAMS:
        return builtin_program_path(text)
    path = Path(text)
    if not path.exists():
        raise BpfObjectError(
            f"{path}: no such file (pass a compiled BPF object, a .c source, or a built-in name: "
            f"{', '.join(BUILTIN_PROGRAMS)})"
        )
    if path.suffix == ".c":
        dirs = [Path(d) for d in include_dirs]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise ConfigError(f"include_dirs: {', '.join(missing)} is not a directory")
        return _compiled_source(path, dirs, [str(f) for f in cflags])
    if include_dirs or cflags:
        raise ConfigError(f"{path} is compiled already: include_dirs= and cflags= apply to a .c source")
    return path


@dataclass(frozen=True)
class _Iface:
    netns: str | None
    ifindex: int
    ifname: str

    def __str__(self) -> str:
        return f"{self.ifname}@{self.netns}" if self.netns else self.ifname


def _resolve_iface(target: Target, netns: Netns | str | None) -> _Iface:
    from xdptest.netns import Endpoint

    if isinstance(target, Endpoint):
        return _Iface(target.netns.name, target.ifindex, target.ifname)
    ns_name = netns if isinstance(netns, str) or netns is None else netns.name
    with iproute(ns_name) as ipr:
        if isinstance(target, int):
            links = ipr.get_links(target) if ipr.link_lookup(index=target) else []
            if not links:
                raise InterfaceNotFoundError(f"no interface with index {target} in {ns_name or 'this namespace'}")
            return _Iface(ns_name, target, links[0].get_attr("IFLA_IFNAME"))
        found = ipr.link_lookup(ifname=target)
    if not found:
        raise InterfaceNotFoundError(
            f"no interface {target!r} in {'namespace ' + ns_name if ns_name else 'this namespace'}"
        )
    return _Iface(ns_name, int(found[0]), target)


def _xdp_state(iface: _Iface) -> dict[str, int]:
    """Program ids attached to the interface by mode (``native``, ``generic``, ``offload``)."""
    with iproute(iface.netns) as ipr:
        links = ipr.get_links(iface.ifindex)
    xdp = links[0].get_attr("IFLA_XDP") if links else None
    if not xdp:
        return {}
    attrs = dict(xdp.get("attrs", [])) if isinstance(xdp, dict) else {}
    state: dict[str, int] = {}
    for key, mode in (("IFLA_XDP_DRV_PROG_ID", "native"), ("IFLA_XDP_SKB_PROG_ID", "generic"),
                      ("IFLA_XDP_HW_PROG_ID", "offload")):
        if attrs.get(key):
            state[mode] = int(attrs[key])
    attached = _ATTACHED_NAMES.get(attrs.get("IFLA_XDP_ATTACHED"))
    if attached and attached != "multi" and attached not in state and attrs.get("IFLA_XDP_PROG_ID"):
        state[attached] = int(attrs["IFLA_XDP_PROG_ID"])
    return state


def attached_programs(target: Target, netns: Netns | str | None = None) -> dict[str, int]:
    """What XDP programs are attached to an interface: ``{mode: program id}``."""
    return _xdp_state(_resolve_iface(target, netns))


def _set_xdp(iface: _Iface, attrs: list[tuple[str, int]]) -> None:
    with iproute(iface.netns) as ipr:
        ipr.link("set", index=iface.ifindex, xdp={"attrs": attrs})


class Attachment:
    """One program attached to one interface in one mode; ``detach()`` (or ``with``) removes it."""

    def __init__(self, program: XdpProgram, iface: _Iface, mode: AttachMode, keeper: bool = False,
                 link_fd: int = -1) -> None:
        self.program = program
        self.iface = iface
        self.mode = mode
        self.link_fd = link_fd  # attached through a BPF link: closing it detaches
        self.keeper = keeper  # the kit's XDP_PASS program on a veth peer (see xdptest.veth_peer)
        self._attached = True

    @property
    def attached(self) -> bool:
        return self._attached

    def detach(self) -> None:
        """Detach, but only if our program is still the one attached there. Safe to call twice."""
        if not self._attached:
            return
        self._attached = False
        self.program._attachments.discard(self)
        try:
            self._detach()
        finally:
            if not self.keeper:
                veth_peer.released(self)

    def _detach(self) -> None:
        if self.link_fd >= 0:
            fd, self.link_fd = self.link_fd, -1
            os.close(fd)
            return
        flags = _MODE_FLAGS[self.mode] | XDP_FLAGS_REPLACE
        try:
            _set_xdp(self.iface, [("IFLA_XDP_FD", -1), ("IFLA_XDP_EXPECTED_FD", self.program.fd),
                                  ("IFLA_XDP_FLAGS", flags)])
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code in (errno.ENODEV, errno.ENOENT, errno.EEXIST):
                return  # interface or namespace gone, or someone replaced our program: nothing of ours left
            if code is None and not os.path.exists(f"/run/netns/{self.iface.netns}") and self.iface.netns:
                return
            raise AttachError(code or errno.EIO, f"detaching {self.program.name} from {self.iface}: {exc}") from exc

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.detach()

    def __repr__(self) -> str:
        return f"Attachment({self.program.name} on {self.iface}, {self.mode}{'' if self._attached else ', detached'})"


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returned for one packet."""

    __test__ = False  # not a pytest test class

    action: XdpAction | int
    data: bytes
    duration_ns: int
    retval: int = field(default=0)

    @property
    def packet(self) -> Packet:
        """The output frame dissected by scapy."""
        from scapy.layers.l2 import Ether

        return Ether(self.data)


_live_programs: weakref.WeakSet[XdpProgram] = weakref.WeakSet()


def _place_pins(native: _libbpf.NativeObject, pin_root: PinRoot | str | os.PathLike[str] | None) -> None:
    """Point the object's LIBBPF_PIN_BY_NAME maps at the pin root (mounted only if one needs it)."""
    pinned = [ref for ref in native.maps() if native.pin_path(ref) is not None]
    if not pinned:
        return
    if pin_root is None or isinstance(pin_root, PinRoot):
        root = (pin_root or process_root()).path
    else:
        root = Path(pin_root)
        if not root.is_dir():
            raise ConfigError(f"pin_root {root}: no such directory (it must be on a mounted bpffs)")
    for ref in pinned:
        native.set_pin_path(ref, str(root / ref.name))


class _OpenOrLoad:
    """``XdpProgram.load(path, ...)`` opens and loads in one step (a class call);
    ``prog.load()`` loads an object opened with ``XdpProgram.open`` (an instance call)."""

    def __get__(self, obj: XdpProgram | None, cls: type[XdpProgram]) -> Any:
        if obj is None:
            return functools.partial(_open_and_load, cls)
        return obj._load


def _open_and_load(cls: type[XdpProgram], path_or_builtin: str | os.PathLike[str], program: str | None = None, *,
                   rodata: Mapping[str, Any] | None = None, **options: Any) -> XdpProgram:
    prog = cls.open(path_or_builtin, program, **options)
    try:
        if rodata:
            prog.variables.set_rodata(rodata)
        return prog._load()
    except BaseException:
        prog.close()
        raise


class XdpProgram:
    """A BPF object and the XDP program chosen from it.

    ``XdpProgram.load(path, program=None, rodata={...})`` opens and loads in one step. In two:
    ``prog = XdpProgram.open(path)``, then configure - ``prog.variables["name"] = value`` (global
    data, ``const volatile`` included), ``prog.maps["m"].max_entries = n`` - then ``prog.load()``.
    ``close()`` detaches every attachment made through it and frees the object.
    """

    load = _OpenOrLoad()

    def __init__(self, native: _libbpf.NativeObject, prog: _libbpf.ProgramRef, path: Path,
                 offload_to: Endpoint | None = None) -> None:
        self._native = native
        self._prog = prog
        self._offload_to = offload_to
        self.name = prog.name
        self.section = prog.section
        self.path = path
        self.fd = -1
        self.id = 0
        self.loaded = False
        self.maps: Mapping[str, XdpMap] = MapTable({m.name: XdpMap(m, self) for m in native.maps()})
        self.variables = Variables(native, prog.name)
        self._attachments: set[Attachment] = set()
        self.default_mode: AttachMode = "native"  # used by attach() when no mode is given
        self._closed = False
        self._lock = threading.Lock()
        _live_programs.add(self)

    @classmethod
    def open(cls, path_or_builtin: str | os.PathLike[str], program: str | None = None, *,
             offload_to: Endpoint | None = None, include_dirs: Sequence[str | os.PathLike[str]] = (),
             cflags: Sequence[str] = (), pin_root: PinRoot | str | os.PathLike[str] | None = None) -> XdpProgram:
        """Open a BPF object without loading it, choosing ``program`` (default: its only XDP
        program); configure its variables and map sizes, then call :meth:`load`.

        A ``.c`` path is compiled first (cached) with clang as the libbpf toolchain does, plus
        ``include_dirs`` and ``cflags`` (e.g. ``["-DMAX_PORTS=16"]``); ``vmlinux.h`` is generated
        from the running kernel's BTF when the source includes it. ``offload_to`` loads the object
        for that device so it can be attached in offload mode.

        Maps declared ``LIBBPF_PIN_BY_NAME`` are pinned under ``pin_root``: by default a private
        bpffs of the kit (the test's, under the plugin's fixtures; else the process's), never
        ``/sys/fs/bpf``; a :class:`~xdptest.pins.PinRoot` shares one among programs; a directory
        on a bpffs of your own (``"/sys/fs/bpf"``) is used as it is, and its pins are yours.
        """
        caps.require(caps.CAP_BPF, caps.CAP_NET_ADMIN, action="loading an XDP program")
        path = _resolve_path(path_or_builtin, include_dirs, cflags)
        try:
            native = _libbpf.NativeObject(str(path))
        except OSError as exc:
            raise BpfObjectError(f"{path} is not a usable BPF object: {exc.strerror}") from None
        try:
            _place_pins(native, pin_root)
            return cls(native, cls._choose(native, path, program), path, offload_to)
        except BaseException:
            native.close()
            raise

    def _load(self) -> XdpProgram:
        """Load the opened object into the kernel (its variables and map sizes as configured)."""
        self._check_open()
        if self.loaded:
            raise ConfigError(f"{self.name} is loaded already")
        native = self._native
        self.variables._before_load(native)
        if self._frags_aware_builtin():
            native.add_flags(self._prog, _libbpf.BPF_F_XDP_HAS_FRAGS)
        try:
            if self._offload_to is not None:
                native.set_offload_ifindex(self._offload_to.ifindex)
                run_in_netns(self._offload_to.netns.name, native.load)
            else:
                native.load()
        except OSError as exc:
            raise self._load_error(exc, self.path) from None
        self.fd = self._prog.fd
        self.id = _libbpf.prog_info(self.fd).id
        for xmap in self.maps.values():
            xmap._loaded()
        self.variables._after_load()
        self.loaded = True
        return self

    def _frags_aware_builtin(self) -> bool:
        """The built-ins take multi-buffer (jumbo) frames where the kernel has xdp.frags (5.18+),
        as if declared ``SEC("xdp.frags")``: veth attaches no other program above a page's MTU."""
        from xdptest.features import probe

        builtin = self.path.parent == builtin_program_path("pass").parent and self.path.stem.removesuffix(".bpf") \
            in BUILTIN_PROGRAMS
        return builtin and self._offload_to is None and probe("xdp_frags").present

    @staticmethod
    def _choose(native: _libbpf.NativeObject, path: Path, program: str | None) -> _libbpf.ProgramRef:
        # Sections named the pre-1.0 way (SEC("xdp_prog"), as older tutorials write them) are no
        # longer XDP to libbpf; they are to the kernel, so say so before the load.
        programs = [native.set_type(p, _libbpf.BPF_PROG_TYPE_XDP)
                    if p.type == _libbpf.BPF_PROG_TYPE_UNSPEC and p.section.startswith("xdp") else p
                    for p in native.programs()]
        listing = ", ".join(f"{p.name} (section {p.section})" for p in programs) or "none"
        if program is not None:
            for p in programs:
                if p.name == program:
                    return p
            raise ProgramNotFoundError(f"{path} has no program {program!r}; programs: {listing}")
        xdp = [p for p in programs if p.type == _libbpf.BPF_PROG_TYPE_XDP]
        if not xdp:
            raise ProgramNotFoundError(
                f"{path} has no XDP program (put it in SEC(\"xdp\")); programs: {listing}"
            )
        if len(xdp) > 1:
            raise ProgramNotFoundError(
                f"{path} has several XDP programs; choose one with program=: "
                f"{', '.join(p.name for p in xdp)}"
            )
        return xdp[0]

    @staticmethod
    def _load_error(exc: OSError, path: Path) -> Exception:
        log = getattr(exc, "log", "") or ""
        messages = (getattr(exc, "messages", "") or "").strip()
        if exc.errno == errno.EPERM and not log:
            return PermissionDeniedError(
                f"loading {path}: the kernel refused (EPERM): it needs CAP_BPF and CAP_NET_ADMIN "
                "(or CAP_SYS_ADMIN) - run as root; on kernels before 5.11 also raise RLIMIT_MEMLOCK"
            )
        if log.strip():
            return VerifierError(exc.errno or errno.EINVAL, f"the verifier rejected {path}", log)
        return BpfObjectError(f"loading {path} failed: {os.strerror(exc.errno or errno.EINVAL)}\n{messages}")

    # --- attach -------------------------------------------------------------------------------

    def attach(self, target: Target, mode: AttachMode | None = None, *,
               netns: Netns | str | None = None, replace: bool = False, link: bool = False,
               peer_keeper: bool = True) -> Attachment:
        """Attach to an interface (an ``Endpoint``, or a name/index with ``netns=``).

        ``mode`` is ``native`` (driver), ``generic`` (skb) or ``offload``; default
        ``self.default_mode`` (``native``, or the ``xdp_attach_mode`` fixture's value).
        Refuses to replace a program someone else attached unless ``replace=True``.
        ``link=True`` attaches through a BPF link (``BPF_LINK_CREATE``, Linux 5.9+), as current
        loaders do: the program stays as long as the link, and nothing can replace it meanwhile.
        ``peer_keeper=False`` leaves the other end of a kit veth pair bare (see
        :mod:`xdptest.veth_peer`; then ``XDP_TX`` replies do not arrive there).
        """
        self._check_loaded()
        mode = mode or self.default_mode
        if mode not in _MODE_FLAGS:
            raise ConfigError(f"attach mode {mode!r}: use 'native', 'generic' or 'offload'")
        iface = _resolve_iface(target, netns)
        if link and replace:
            raise ConfigError("a BPF link never replaces a program: detach the other one first, or use link=False")
        veth_peer.make_way(iface.netns, iface.ifindex)
        try:
            att = self._attach_link(iface, mode) if link else self._attach(iface, mode, replace)
        except BaseException:
            veth_peer.attach_failed(iface.netns, iface.ifindex)
            raise
        peer = getattr(target, "peer", None)
        if mode == "native" and peer is not None and peer_keeper:
            veth_peer.needed(att, peer)
        return att

    def _attach(self, iface: _Iface, mode: AttachMode, replace: bool, keeper: bool = False) -> Attachment:
        flags = _MODE_FLAGS[mode] | (0 if replace else XDP_FLAGS_UPDATE_IF_NOEXIST)
        try:
            _set_xdp(iface, [("IFLA_XDP_FD", self.fd), ("IFLA_XDP_FLAGS", flags)])
        except Exception as exc:
            raise self._attach_error(exc, iface, mode) from None
        att = Attachment(self, iface, mode, keeper)
        with self._lock:
            self._attachments.add(att)
        return att

    def _attach_link(self, iface: _Iface, mode: AttachMode) -> Attachment:
        try:
            fd = run_in_netns(iface.netns, lambda: _libbpf.xdp_link_create(self.fd, iface.ifindex, _MODE_FLAGS[mode]))
        except OSError as exc:
            if exc.errno == errno.EINVAL and not _xdp_state(iface):
                raise NotSupportedError("XDP attach through a BPF link (BPF_LINK_CREATE)",
                                        f"the kernel refused it: {exc.strerror}; use link=False", since="5.9") from None
            raise self._attach_error(exc, iface, mode, link=True) from None
        att = Attachment(self, iface, mode, link_fd=fd)
        with self._lock:
            self._attachments.add(att)
        return att

    def _attach_keeper(self, endpoint: Endpoint) -> Attachment:
        """Attach as the kit's veth-peer keeper: natively, with none of attach()'s bookkeeping."""
        self._check_loaded()
        return self._attach(_resolve_iface(endpoint, None), "native", replace=False, keeper=True)

    def _attach_error(self, exc: Exception, iface: _Iface, mode: str, link: bool = False) -> Exception:
        code = int(getattr(exc, "code", 0) or getattr(exc, "errno", 0) or errno.EIO)
        detail = str(exc.args[1]) if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
        if code == errno.EBUSY or code == errno.EEXIST:
            existing = ", ".join(f"{_libbpf.prog_info_by_id(pid) or '?'} (id {pid}, {where})"
                                 for where, pid in _xdp_state(iface).items()) or "one that has just left"
            return AttachError(code, f"{iface} already has an XDP program attached: {existing}; detach it "
                                     f"first{'' if link else ' or pass replace=True'} ({detail})")
        if code in (errno.EOPNOTSUPP, errno.EINVAL) and mode == "offload":
            return NotSupportedError("XDP offload", f"{iface} cannot run it ({detail}); offload needs "
                                     "a device with BPF offload (netdevsim, nfp) and a program loaded "
                                     "with offload_to=")
        if code == errno.EOPNOTSUPP:
            return NotSupportedError(f"{mode} XDP", f"{iface} does not support it ({detail})")
        if code == errno.EPERM:
            return PermissionDeniedError(f"attaching to {iface} needs CAP_NET_ADMIN: run as root")
        return AttachError(code, f"attaching {self.name} to {iface} in {mode} mode: {detail}")

    @property
    def attachments(self) -> list[Attachment]:
        with self._lock:
            return list(self._attachments)

    # --- test run -----------------------------------------------------------------------------

    def run(self, packet: bytes | Packet, repeat: int = 1, *, ingress_ifindex: int | None = None,
            rx_queue: int | None = None) -> TestRunResult:
        """Run the program on one packet with BPF_PROG_TEST_RUN (no interface involved)."""
        self._check_loaded()
        data = bytes(packet)
        if len(data) < 14:
            raise ConfigError(f"packet of {len(data)} bytes: XDP test runs need at least an Ethernet header (14)")
        if not 1 <= repeat <= 2**31:
            raise ConfigError(f"repeat must be at least 1, got {repeat}")
        try:
            raw = _libbpf.prog_test_run(self.fd, data, repeat, ingress_ifindex, rx_queue,
                                        out_size=len(data) + 4096)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                raise PermissionDeniedError("BPF_PROG_TEST_RUN needs CAP_BPF (run as root)") from None
            if ingress_ifindex is not None or rx_queue is not None:  # an xdp_md context came with 5.15
                raise NotSupportedError("BPF_PROG_TEST_RUN with an XDP context (ingress_ifindex, rx_queue)",
                                        f"the kernel refused: {exc.strerror}", since="5.15") from None
            raise NotSupportedError("BPF_PROG_TEST_RUN", f"the kernel refused: {exc.strerror}") from None
        try:
            action: XdpAction | int = XdpAction(raw.retval)
        except ValueError:
            action = raw.retval
        return TestRunResult(action=action, data=raw.data, duration_ns=raw.duration_ns, retval=raw.retval)

    # --- lifetime -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"program {self.name} was closed")

    def _check_loaded(self) -> None:
        self._check_open()
        if not self.loaded:
            raise ConfigError(f"program {self.name} is opened but not loaded: call load() first")

    @property
    def closed(self) -> bool:
        return self._closed

    def keep(self) -> list[str]:
        """For ``--xdptest-keep``: free the object but leave the program attached where it is
        attached inside a namespace (it goes when the namespace goes); detach it elsewhere.
        Returns the namespaces it stays attached in."""
        kept = []
        for att in self.attachments:
            if att.iface.netns:
                att._attached = False
                self._attachments.discard(att)
                kept.append(att.iface.netns)
        self.close()
        return kept

    def close(self) -> None:
        """Detach everywhere, then free the object. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _live_programs.discard(self)
        run_all([*(att.detach for att in self.attachments), self._native.close])

    def __enter__(self) -> XdpProgram:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XdpProgram({self.name!r} from {self.path.name}, id={self.id}{', closed' if self._closed else ''})"


@atexit.register
def _detach_all() -> None:
    """Attachments outlive the process in the kernel: never leave one behind."""
    for prog in list(_live_programs):
        with contextlib.suppress(Exception):
            prog.close()
