"""Failure artifacts: what a failed test's kit objects knew, written where a person can read it.

The plugin registers the programs, sockets, endpoints and traffic runs a test creates; when the
test fails (and ``--xdptest-artifacts DIR`` is set) they are dumped into ``DIR/<test>/``:
``*-tx.pcap``/``*-rx.pcap`` (what kit sockets sent and received, for tcpdump or Wireshark),
``*-corrupted-actual.pcap``/``*-corrupted-expected.pcap`` (the corrupted frames a traffic run
kept, and the frames expected in their place), ``sockets.json`` (XDP_STATISTICS and ring
snapshots), ``programs.json`` (map contents and where each program is attached) and
``report.json`` for traffic runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xdptest.pcapfile import write_pcap

if TYPE_CHECKING:
    from xdptest.bpf import XdpProgram
    from xdptest.netns import Endpoint
    from xdptest.report import TrafficReport
    from xdptest.xsk import XskSocket

MAX_FRAMES = 10_000
MAX_MAP_ENTRIES = 1024


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class _Traffic:
    label: str
    report: TrafficReport
    sent: list[bytes]
    received: list[bytes]


@dataclass
class ArtifactCollector:
    """The kit objects of one test, and the frames its sockets moved (bounded)."""

    programs: list[XdpProgram] = field(default_factory=list)
    sockets: list[XskSocket] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    traffic: list[_Traffic] = field(default_factory=list)
    socket_frames: dict[int, tuple[list[bytes], list[bytes]]] = field(default_factory=dict)

    def record_socket_frames(self, sock: XskSocket, sent: list[bytes], received: list[bytes]) -> None:
        tx, rx = self.socket_frames.setdefault(id(sock), ([], []))
        tx.extend(sent[: max(0, MAX_FRAMES - len(tx))])
        rx.extend(received[: max(0, MAX_FRAMES - len(rx))])

    def add_traffic(self, report: TrafficReport, sent: list[bytes], received: list[bytes]) -> None:
        self.traffic.append(_Traffic(f"traffic{len(self.traffic) + 1}", report, sent, received))

    def dump(self, directory: Path) -> list[Path]:
        """Write everything; return the files written. Never raises for one bad object."""
        directory.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for t in self.traffic:
            written += self._pcaps(directory, t.label, t.sent, t.received)
            if t.report.bad_frames:  # corrupted frames as received, and the frames expected
                written += self._pcaps(directory, f"{t.label}-corrupted", [
                    bytes.fromhex(b["expected"] or "") for b in t.report.bad_frames], [
                    bytes.fromhex(b["actual"]) for b in t.report.bad_frames], ("expected", "actual"))
            path = directory / f"{t.label}-report.json"
            path.write_text(t.report.to_json())
            written.append(path)
        sockets = []
        for i, sock in enumerate(self.sockets):
            entry: dict[str, Any] = {"endpoint": str(sock.endpoint), "queue": sock.queue}
            try:
                entry.update(bind_mode=sock.bind_mode, statistics=sock.statistics(),
                             rings={k: asdict(v) for k, v in sock.rings().items()})
            except Exception as exc:  # closed already, or the namespace went away
                entry["error"] = str(exc)
            sockets.append(entry)
            tx, rx = self.socket_frames.get(id(sock), ([], []))
            written += self._pcaps(directory, f"xsk{i}-{sock.endpoint.ifname}-q{sock.queue}", tx, rx)
        if sockets:
            written.append(self._json(directory / "sockets.json", sockets))
        if self.programs or self.endpoints:
            written.append(self._json(directory / "programs.json", self._programs()))
        return written

    def _programs(self) -> dict[str, Any]:
        from xdptest.bpf import attached_programs

        programs = []
        for prog in self.programs:
            entry: dict[str, Any] = {"name": prog.name, "id": prog.id, "path": str(prog.path),
                                     "attached": [f"{a.iface} ({a.mode})" for a in prog.attachments]}
            maps: dict[str, Any] = {}
            for name, m in prog.maps.items():
                try:
                    items = [(k, v) for _, (k, v) in zip(range(MAX_MAP_ENTRIES), m.items(), strict=False)]
                    maps[name] = {"type": m.type_name, "items": [[_jsonable(k), _jsonable(v)] for k, v in items]}
                except Exception as exc:  # e.g. XSKMAP values cannot be read from user space
                    maps[name] = {"type": m.type_name, "error": str(exc)}
            entry["maps"] = maps
            programs.append(entry)
        interfaces: dict[str, Any] = {}
        for end in self.endpoints:
            try:
                interfaces[str(end)] = attached_programs(end)
            except Exception as exc:
                interfaces[str(end)] = {"error": str(exc)}
        return {"programs": programs, "attached_by_interface": interfaces}

    @staticmethod
    def _pcaps(directory: Path, label: str, sent: list[bytes], received: list[bytes],
               suffixes: tuple[str, str] = ("tx", "rx")) -> list[Path]:
        out = []
        for suffix, frames in zip(suffixes, (sent, received), strict=True):
            path = directory / f"{label}-{suffix}.pcap"
            write_pcap(path, frames)
            out.append(path)
        return out

    @staticmethod
    def _json(path: Path, body: Any) -> Path:
        path.write_text(json.dumps(body, indent=2, default=str))
        return path


def artifact_dir(root: Path, nodeid: str) -> Path:
    """A folder name for a test id that any file system accepts."""
    return root / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]
