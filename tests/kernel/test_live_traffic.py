"""The live-frames engine end to end: frames generated in the kernel at one end of a veth pair,
received by an AF_XDP socket at the other and checked by the same verifier as the AF_XDP
engine's frames."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from xdptest import packets
from xdptest._native.gen import MAX_STREAMS, Verifier
from xdptest.errors import ConfigError, NotSupportedError
from xdptest.features import FeatureStatus
from xdptest.live import LiveGenerator
from xdptest.netns import Endpoint, VethPair
from xdptest.xsk import Umem, XskLoop, XskSocket


def _template(src: Endpoint, dst: Endpoint, size: int = 64) -> packets.Template:
    return packets.from_scapy(f"Ether(src='{src.mac}', dst='{dst.mac}')/IP(src='{src.ipv4}', "
                              f"dst='{dst.ipv4}')/UDP(sport=1000, dport=9)", size)


def _receive(rx: XskSocket, verifier: Verifier, cpu: int, count: int) -> threading.Thread:
    """An RX loop on a thread pinned to ``cpu`` (the sender's CPU also runs the peer's NAPI) that
    ends with ``count`` frames or after a minute. Not on an idle time: an emulated guest may take
    longer than any short one before the first frame comes."""
    loop = XskLoop(batch=64, verifier=verifier, count=count, duration=60.0)

    def run() -> None:
        os.sched_setaffinity(0, {cpu})
        rx.run_rx(loop)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


CPUS = sorted(os.sched_getaffinity(0))
LIVE = pytest.mark.requires_feature("live_frames")


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _big_rx(end: Endpoint, queue: int = 0) -> XskSocket:
    """An RX socket with 16384 frames: 160 ms of 100 kpps, should the (shared) machine stall it."""
    return XskSocket(end, queue=queue, umem=Umem(frame_size=2048, frames=16384), rx_size=16384,
                     fill_size=16384, tx_size=0)


@LIVE
def test_every_frame_arrives_verified_and_count_is_exact() -> None:
    count = 30_000
    with VethPair() as pair, _big_rx(pair.b) as rx:
        template = _template(pair.a, pair.b)
        varies = [packets.resolve(packets.parse_vary("udp.sport=1000-1999"), template)]
        verifier = Verifier()
        with LiveGenerator(pair.a, [template], varies, cpus=[CPUS[0]], count=count, rate=100_000,
                           stream_base=5) as gen:
            thread = _receive(rx, verifier, CPUS[-1], count)
            stats = gen.run()
        thread.join(70)
        assert not thread.is_alive()
    assert stats.sent == count and stats.per_stream == {5: count}
    assert stats.bad_len == 0
    totals = verifier.totals()
    assert totals.corrupted == 0 and totals.foreign == 0
    assert totals.frames == totals.stamped == count
    [stream] = verifier.streams()
    assert (stream.stream, stream.unique, stream.duplicated, stream.reordered) == (5, count, 0, 0)
    assert totals.latency_samples == count


@LIVE
@pytest.mark.skipif(len(CPUS) < 2, reason=f"one sending thread per CPU, and this process may use {len(CPUS)} CPU")
def test_two_threads_send_one_stream_each_to_the_queue_of_their_cpu() -> None:
    """Live frames land on the peer's queue by CPU: one socket per queue, one stream each."""
    count = 20_000
    with VethPair(queues=2) as pair, \
            _big_rx(pair.b, 0) as rx0, _big_rx(pair.b, 1) as rx1:
        template = _template(pair.a, pair.b)
        verifiers = [Verifier(), Verifier()]
        with LiveGenerator(pair.a, [template], threads=2, count=count, rate=100_000) as gen:
            per_queue = [sum(count // 2 for cpu in gen.cpus if cpu % 2 == queue) for queue in (0, 1)]
            threads = [_receive(rx, v, cpu, n)
                       for rx, v, cpu, n in zip((rx0, rx1), verifiers, CPUS, per_queue, strict=False)]
            stats = gen.run()
        for thread in threads:
            thread.join(70)
            assert not thread.is_alive()
    assert stats.per_stream == {0: count // 2, 1: count // 2}
    for queue, verifier in enumerate(verifiers):
        assert verifier.totals().corrupted == 0
        expected = {s for s, cpu in zip(stats.per_stream, stats.cpus, strict=True) if cpu % 2 == queue}
        streams = {s.stream: s for s in verifier.streams()}
        assert set(streams) == expected
        assert all(streams[s].unique == count // 2 for s in expected)


@LIVE
def test_fields_spread_as_asked_with_valid_checksums() -> None:
    """Frames copied out of the receiver: every udp.sport value equally often, random ip.src
    within its range, TTLs in order, checksums as scapy computes them."""
    count = 2000
    with VethPair() as pair, _big_rx(pair.b) as rx:
        template = _template(pair.a, pair.b, 100)
        specs = ["udp.sport=2000-2099", "ip.src=10.9.0.1-10.9.0.50:random", "ip.ttl=10-29"]
        varies = [packets.resolve(packets.parse_vary(s), template) for s in specs]
        got: list[bytes] = []
        with LiveGenerator(pair.a, [template], varies, threads=1, count=count, rate=100_000) as gen:
            gen.start()
            deadline = time.monotonic() + 5
            while len(got) < count and time.monotonic() < deadline:
                got += rx.recv(256, timeout=0.2)
            gen.wait()
    assert len(got) == count
    verifier = Verifier()
    verifier.feed(got)
    assert verifier.totals().stamped == count
    sports = collections.Counter()
    sources = set()
    for raw in got:
        pkt = Ether(raw)
        again = pkt.copy()
        del again[IP].chksum, again[UDP].chksum
        assert bytes(Ether(bytes(again))) == raw, "checksums differ from scapy's"
        seq = int.from_bytes(raw[template.stamp_offset + 4:template.stamp_offset + 8], "big")
        sports[pkt[UDP].sport] += 1
        sources.add(pkt[IP].src)
        assert pkt[IP].ttl == 10 + seq % 20
    assert sports == {port: count // 100 for port in range(2000, 2100)}
    assert sources <= {f"10.9.0.{i}" for i in range(1, 51)} and len(sources) > 40


@LIVE
def test_duration_and_stop() -> None:
    with VethPair() as pair:
        template = _template(pair.a, pair.b)
        # 20 kpps: a rate an emulated guest keeps too (it reaches about 60 kpps).
        with LiveGenerator(pair.a, [template], threads=1, duration=0.3, rate=20_000) as gen:
            start = time.monotonic()
            stats = gen.run()
            assert 0.28 < time.monotonic() - start < 1.0
            assert 4_000 < stats.sent <= 6_200  # 20 kpps for 0.3 s, paced in ~5 ms slices
        with LiveGenerator(pair.a, [template], threads=1) as gen:
            gen.start()
            time.sleep(0.1)
            gen.stop()
            assert gen.wait(2)
            assert gen.stats().sent > 0
        with LiveGenerator(pair.a, [template], threads=1) as gen:
            event = threading.Event()
            timer = threading.Timer(0.1, event.set)
            timer.start()
            assert gen.run(event).sent > 0
            timer.join()


def test_not_supported_is_a_clear_error() -> None:
    def missing(name: str) -> FeatureStatus:
        return FeatureStatus(name, False, "BPF_F_TEST_XDP_LIVE_FRAMES refused: Invalid argument", "5.18")

    with VethPair() as pair, pytest.raises(NotSupportedError) as info:
        LiveGenerator(pair.a, [_template(pair.a, pair.b)], probe=missing, count=1)
    assert "live frames" in str(info.value) and "5.18" in str(info.value)
    assert "AF_XDP engine" in str(info.value)
    assert isinstance(info.value, OSError)


@LIVE
def test_a_peer_without_napi_is_refused_with_the_remedy() -> None:
    with VethPair(gro=False) as pair, \
            LiveGenerator(pair.a, [_template(pair.a, pair.b)], count=10) as gen, \
            pytest.raises(ConfigError, match="gro on"):
        gen.start()


@LIVE
def test_bad_arguments() -> None:
    with VethPair() as pair:
        template = _template(pair.a, pair.b)
        for kwargs, match in (({"threads": 99}, "threads=99"), ({"batch_size": 0}, "batch_size"),
                              ({"rate": 0}, "rate"), ({"stream_base": MAX_STREAMS, "threads": 1}, "stream_base")):
            with pytest.raises(ConfigError, match=match):
                LiveGenerator(pair.a, [template], **kwargs)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="one template"):
            LiveGenerator(pair.a, [template, template])


@LIVE
def test_the_private_namespace_goes_with_the_generator() -> None:
    with VethPair() as pair:
        gen = LiveGenerator(pair.a, [_template(pair.a, pair.b)], count=10)
        assert gen._anchor is not None
        name = gen._anchor.name
        assert name in _namespaces()
        gen.run()
        gen.close()
    assert name not in _namespaces()


@LIVE
def test_without_the_anchor_counts_stay_exact() -> None:
    """Without the private namespace each kernel call costs tens of milliseconds: slower, the same."""
    with VethPair() as pair, LiveGenerator(pair.a, [_template(pair.a, pair.b)], threads=1, count=3000,
                                           anchor=False) as gen:
        assert gen._anchor is None
        assert gen.run().sent == 3000
