"""Packet templates and field variation: built once in Python, applied per frame in C.

A :class:`Template` is the bytes of one frame plus the offsets the C loops need: where the
16-byte stamp goes (the start of the L4 payload, or of the L3 payload for other protocols), and
where the IP and L4 headers start so that varied fields keep every checksum right.

Stamp layout (network byte order), written by the sender into every frame::

    0  magic   u16  0x5854 ("XT")
    2  stream  u16  the sending queue/thread
    4  seq     u32  sequence number (low 32 bits; the receiver extends it)
    8  tx_ts   u32  CLOCK_MONOTONIC ns at stamping (low 32 bits: latencies up to 4.29 s)
    12 check   u32  a hash of the fields above, the frame length and the rest of the payload

scapy is imported only when a template is built from an expression or a pcap.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xdptest.errors import ConfigError

if TYPE_CHECKING:
    from scapy.packet import Packet

STAMP_SIZE = 16
STAMP_MAGIC = 0x5854
ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
IPPROTO_TCP, IPPROTO_UDP = 6, 17
MIN_FRAME, MAX_FRAME = 60, 9216


@dataclass(frozen=True)
class Template:
    """One frame to send, with the offsets of its headers (-1 where absent)."""

    frame: bytes
    stamp_offset: int
    l3_offset: int = -1
    l3_version: int = 0  # 4, 6 or 0
    l4_offset: int = -1
    l4_proto: int = 0  # IPPROTO_UDP, IPPROTO_TCP or 0

    @property
    def size(self) -> int:
        return len(self.frame)

    @property
    def headers_size(self) -> int:
        return self.stamp_offset

    def resized(self, size: int) -> Template:
        """Pad with zeros (or trim payload) to ``size`` bytes, fixing length fields and checksums."""
        if size == self.size:
            return self
        if size < self.stamp_offset + STAMP_SIZE:
            raise ConfigError(
                f"a {size}-byte frame has no room for the {STAMP_SIZE}-byte stamp after its "
                f"{self.stamp_offset} bytes of headers; use a size of at least {self.stamp_offset + STAMP_SIZE}"
            )
        if size > MAX_FRAME:
            raise ConfigError(f"frame size {size} is above the {MAX_FRAME}-byte maximum")
        frame = bytearray(self.frame[:size].ljust(size, b"\0"))
        _fix_lengths_and_checksums(frame, self)
        return replace(self, frame=bytes(frame))


def _ones_sum(data: bytes | bytearray, start: int = 0) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = start
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _csum(data: bytes | bytearray, start: int = 0) -> int:
    return ~_ones_sum(data, start) & 0xFFFF


def _fix_lengths_and_checksums(frame: bytearray, t: Template) -> None:
    """Recompute IP/L4 lengths and checksums of a frame whose size changed (setup time only)."""
    if t.l3_version == 4:
        ihl = (frame[t.l3_offset] & 0x0F) * 4
        frame[t.l3_offset + 2: t.l3_offset + 4] = (len(frame) - t.l3_offset).to_bytes(2, "big")
        frame[t.l3_offset + 10: t.l3_offset + 12] = b"\0\0"
        frame[t.l3_offset + 10: t.l3_offset + 12] = _csum(frame[t.l3_offset: t.l3_offset + ihl]).to_bytes(2, "big")
        pseudo = frame[t.l3_offset + 12: t.l3_offset + 20]
    elif t.l3_version == 6:
        frame[t.l3_offset + 4: t.l3_offset + 6] = (len(frame) - t.l3_offset - 40).to_bytes(2, "big")
        pseudo = frame[t.l3_offset + 8: t.l3_offset + 40]
    else:
        return
    if t.l4_proto not in (IPPROTO_UDP, IPPROTO_TCP):
        return
    l4_len = len(frame) - t.l4_offset
    if t.l4_proto == IPPROTO_UDP:
        frame[t.l4_offset + 4: t.l4_offset + 6] = l4_len.to_bytes(2, "big")
        csum_at = t.l4_offset + 6
    else:
        csum_at = t.l4_offset + 16
    frame[csum_at: csum_at + 2] = b"\0\0"
    start = _ones_sum(bytes(pseudo) + bytes([0, t.l4_proto]) + l4_len.to_bytes(2, "big"))
    value = _csum(frame[t.l4_offset:], start)
    if t.l4_proto == IPPROTO_UDP and value == 0:
        value = 0xFFFF
    frame[csum_at: csum_at + 2] = value.to_bytes(2, "big")


def analyse(frame: bytes) -> Template:
    """Find the headers of an Ethernet frame and where its stamp goes."""
    if len(frame) < ETH_HLEN:
        raise ConfigError(f"a frame of {len(frame)} bytes is shorter than an Ethernet header")
    off = 12
    ethertype = int.from_bytes(frame[off: off + 2], "big")
    off += 2
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= off + 4:
        ethertype = int.from_bytes(frame[off + 2: off + 4], "big")
        off += 4
    if ethertype == ETH_P_IP and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        proto = frame[off + 9]
        return _with_l4(frame, off, 4, off + ihl, proto)
    if ethertype == ETH_P_IPV6 and len(frame) >= off + 40:
        return _with_l4(frame, off, 6, off + 40, frame[off + 6])
    return Template(frame=frame, stamp_offset=off)


def _with_l4(frame: bytes, l3: int, version: int, l4: int, proto: int) -> Template:
    if proto == IPPROTO_UDP:
        return Template(frame, l4 + 8, l3, version, l4, proto)
    if proto == IPPROTO_TCP and len(frame) >= l4 + 20:
        return Template(frame, l4 + (frame[l4 + 12] >> 4) * 4, l3, version, l4, proto)
    return Template(frame, l4, l3, version, -1, 0)


def _scapy_namespace() -> dict[str, Any]:
    import scapy.layers.all as layers
    from scapy.packet import Padding, Raw

    namespace = {name: getattr(layers, name) for name in dir(layers) if not name.startswith("_")}
    namespace.update(Raw=Raw, Padding=Padding)
    return namespace


def parse_scapy(expr: str) -> Packet:
    """Evaluate a scapy expression such as ``Ether()/IP(dst='198.18.0.2')/UDP(dport=9)``."""
    from scapy.packet import Packet

    try:
        pkt = eval(compile(expr, "--packet", "eval"), {"__builtins__": {}}, _scapy_namespace())
    except Exception as exc:
        raise ConfigError(f"--packet {expr!r} is not a scapy expression: {exc}") from None
    if not isinstance(pkt, Packet):
        raise ConfigError(f"--packet {expr!r} gives {type(pkt).__name__}, not a scapy packet")
    return pkt


def from_scapy(pkt: Packet | str, size: int | None = None, *, min_size: int = MIN_FRAME,
               src_mac: str | None = None, dst_mac: str | None = None, src_ip: str | None = None,
               dst_ip: str | None = None, src_ip6: str | None = None, dst_ip6: str | None = None) -> Template:
    """A template from a scapy packet (or expression); unset addresses take the given defaults.

    Missing MAC addresses are never resolved by scapy (that would query this host's routes).
    """
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    if isinstance(pkt, str):
        pkt = parse_scapy(pkt)
    pkt = pkt.copy()
    if not isinstance(pkt, Ether):
        raise ConfigError(f"the packet must start with Ether(), got {pkt.__class__.__name__}")
    for field, value in (("src", src_mac), ("dst", dst_mac)):
        if pkt.getfieldval(field) is None or field not in pkt.fields:
            if value is None and field == "dst":
                raise ConfigError("the packet needs Ether(dst=...) when no receiver is known")
            pkt.setfieldval(field, value or "02:00:00:00:00:01")
    from scapy.layers.inet6 import IPv6

    for layer, src, dst in ((IP, src_ip, dst_ip), (IPv6, src_ip6, dst_ip6)):
        if layer in pkt:
            header = pkt[layer]
            if "src" not in header.fields and src:
                header.src = src
            if "dst" not in header.fields and dst:
                header.dst = dst
    template = analyse(bytes(pkt))
    if size is None:
        size = max(template.size, template.stamp_offset + STAMP_SIZE, min_size)
    return template.resized(size)


def _read_pcap(path: str | Path) -> Any:
    """scapy's reader of a pcap or pcapng file (a context manager yielding packets)."""
    from scapy.layers.l2 import Ether  # noqa: F401 - registers the Ethernet link type with the reader
    from scapy.utils import PcapReader

    try:
        return PcapReader(str(path))
    except (OSError, Exception) as exc:
        raise ConfigError(f"--pcap {path}: cannot read it as pcap or pcapng: {exc}") from None


def from_pcap(path: str | Path, size: int | None = None, limit: int = 65536) -> list[Template]:
    """Templates from the frames of a pcap/pcapng file (Ethernet link type)."""
    templates: list[Template] = []
    with _read_pcap(path) as reader:
        for pkt in reader:
            if len(templates) >= limit:
                raise ConfigError(f"--pcap {path}: more than {limit} frames; cut the capture down")
            frame = bytes(pkt)
            t = analyse(frame)
            want = size if size is not None else max(t.size, t.stamp_offset + STAMP_SIZE, MIN_FRAME)
            templates.append(t.resized(want))
    if not templates:
        raise ConfigError(f"--pcap {path}: no frames in it")
    return templates


def longest_in_pcap(path: str | Path) -> int:
    """The length of a capture's longest frame (0 for an empty one)."""
    with _read_pcap(path) as reader:
        return max((len(bytes(pkt)) for pkt in reader), default=0)


def verbatim_frames(path: str | Path, limit: int = 65536) -> list[Template]:
    """The frames of a capture exactly as they are (no padding, no stamp): what ``--verbatim`` sends."""
    frames: list[Template] = []
    with _read_pcap(path) as reader:
        for i, pkt in enumerate(reader):
            if len(frames) >= limit:
                raise ConfigError(f"--pcap {path}: more than {limit} frames; cut the capture down")
            frame = bytes(pkt)
            if len(frame) < ETH_HLEN:
                raise ConfigError(f"--pcap {path}: frame {i} has {len(frame)} bytes, less than an Ethernet header")
            frames.append(analyse(frame))
    if not frames:
        raise ConfigError(f"--pcap {path}: no frames in it")
    return frames


def pcap_schedule(path: str | Path, speedup: float = 1.0, limit: int = 65536) -> tuple[list[int], int]:
    """The capture's timing as a TX schedule: each frame's offset from the first (ns, divided by
    ``speedup``) and the period after which a loop starts again (the last offset plus the mean
    gap). Timestamps that go back in time are held at the previous one."""
    if not speedup > 0:
        raise ConfigError(f"--speedup must be positive, got {speedup}")
    stamps: list[int] = []
    with _read_pcap(path) as reader:
        for i, pkt in enumerate(reader):
            if i >= limit:
                break
            stamps.append(int(pkt.time * 1_000_000_000))
    if len(stamps) < 2:
        raise ConfigError(f"--pcap {path}: --replay-timing needs at least two frames to take gaps from")
    offsets, last = [], stamps[0]
    for t in stamps:
        last = max(last, t)
        offsets.append(round((last - stamps[0]) / speedup))
    if offsets[-1] == 0:
        raise ConfigError(f"--pcap {path}: every frame has the same timestamp; there is no timing to replay")
    period = offsets[-1] + max(1, round(offsets[-1] / (len(offsets) - 1)))
    return offsets, period


# --- field variation -----------------------------------------------------------------------

KIND_MAC, KIND_IPV4, KIND_IPV6, KIND_U16, KIND_U8, KIND_SIZE = range(6)
_FIELDS: dict[str, tuple[int, str]] = {
    "eth.src": (KIND_MAC, "eth"), "eth.dst": (KIND_MAC, "eth"),
    "ip.src": (KIND_IPV4, "ip"), "ip.dst": (KIND_IPV4, "ip"), "ip.ttl": (KIND_U8, "ip"),
    "ipv6.src": (KIND_IPV6, "ipv6"), "ipv6.dst": (KIND_IPV6, "ipv6"),
    "udp.sport": (KIND_U16, "udp"), "udp.dport": (KIND_U16, "udp"),
    "tcp.sport": (KIND_U16, "tcp"), "tcp.dport": (KIND_U16, "tcp"),
    "size": (KIND_SIZE, "frame"),
}
VARY_FIELDS = tuple(_FIELDS)


@dataclass(frozen=True)
class Vary:
    """``FIELD=LO-HI[:random]`` resolved against a template: what the C loop writes per frame."""

    field: str
    kind: int
    lo: int
    count: int
    random: bool
    offset: int = -1  # in the frame; -1 for size

    @property
    def hi(self) -> int:
        return self.lo + self.count - 1


def _parse_value(kind: int, text: str, field: str) -> int:
    text = text.strip()
    try:
        if kind == KIND_MAC:
            if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
                raise ValueError("not a MAC address")
            return int(text.replace(":", ""), 16)
        if kind == KIND_IPV4:
            return int(ipaddress.IPv4Address(text))
        if kind == KIND_IPV6:
            return int(ipaddress.IPv6Address(text))
        value = int(text, 0)
    except ValueError as exc:
        raise ConfigError(f"--vary {field}: {text!r} is not a valid value ({exc})") from None
    limit = {KIND_U16: 0xFFFF, KIND_U8: 0xFF, KIND_SIZE: MAX_FRAME}[kind]
    if not 0 <= value <= limit:
        raise ConfigError(f"--vary {field}: {value} is outside 0-{limit}")
    return value


def parse_vary(spec: str) -> Vary:
    """Parse ``FIELD=LO-HI`` (``:random`` suffix for random order); offsets come from ``resolve``."""
    m = re.fullmatch(r"\s*([a-z0-9.]+)\s*=\s*(.+?)(?::(random|seq))?\s*", spec)
    if not m:
        raise ConfigError(f"--vary {spec!r}: use FIELD=LO-HI, e.g. udp.sport=1000-1999")
    field, body, order = m.group(1), m.group(2), m.group(3)
    if field not in _FIELDS:
        raise ConfigError(f"--vary {field}: unknown field; fields: {', '.join(VARY_FIELDS)}")
    kind = _FIELDS[field][0]
    parts = body.split("-") if kind != KIND_IPV6 else body.split("-", 1)
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise ConfigError(f"--vary {spec!r}: the range must be LO-HI")
    lo, hi = (_parse_value(kind, p, field) for p in parts)
    if hi < lo:
        raise ConfigError(f"--vary {field}: the range {body} is inverted (LO must not exceed HI)")
    if hi - lo >= 2**64:
        raise ConfigError(f"--vary {field}: a range may hold at most 2**64 values")
    return Vary(field=field, kind=kind, lo=lo, count=hi - lo + 1, random=order == "random")


def resolve(vary: Vary, template: Template) -> Vary:
    """Bind a variation to a template's offsets; refuse fields the template does not have."""
    f = vary.field
    if f == "size":
        if vary.lo < template.stamp_offset + STAMP_SIZE:
            raise ConfigError(f"--vary size: {vary.lo} leaves no room for headers and stamp "
                              f"({template.stamp_offset + STAMP_SIZE} bytes)")
        return vary
    if f.startswith("eth."):
        return replace(vary, offset=0 if f == "eth.dst" else 6)
    want = {"ip": 4, "ipv6": 6}.get(f.split(".")[0])
    if want is not None and template.l3_version != want:
        raise ConfigError(f"--vary {f}: the packet has no IPv{want} header")
    if f in ("ip.src", "ip.dst"):
        return replace(vary, offset=template.l3_offset + (12 if f == "ip.src" else 16))
    if f == "ip.ttl":
        return replace(vary, offset=template.l3_offset + 8)
    if f in ("ipv6.src", "ipv6.dst"):
        return replace(vary, offset=template.l3_offset + (8 if f == "ipv6.src" else 24))
    proto = IPPROTO_UDP if f.startswith("udp.") else IPPROTO_TCP
    if template.l4_proto != proto:
        raise ConfigError(f"--vary {f}: the packet has no {f.split('.')[0].upper()} header")
    return replace(vary, offset=template.l4_offset + (0 if f.endswith("sport") else 2))
