"""Binding, errors with remedies, teardown (xskxceiver's TEARDOWN) and leaks over 1,000 cycles."""

from __future__ import annotations

import errno
import json
import subprocess
import time

import pytest

from tests.kernel.xsk_helpers import (
    anon_rw_kib,
    bpf_ids,
    frames,
    open_fds,
    recv_n,
    ring_mappings,
    send_all,
    transfer,
)
from xdptest.bpf import XdpProgram, attached_programs
from xdptest.errors import BindError, ClosedError, ConfigError, NotSupportedError
from xdptest.netns import VethPair
from xdptest.xsk import Umem, XskSocket

pytestmark = pytest.mark.kernel


def test_auto_mode_falls_back_to_copy_and_says_why() -> None:
    with VethPair() as pair, XskSocket(pair.b, mode="auto") as rx:
        assert rx.bind_mode == "copy"
        assert rx.fallback_reason is not None
        assert "veth" in rx.fallback_reason and "zero-copy" in rx.fallback_reason


def test_zerocopy_on_veth_is_not_supported() -> None:
    with VethPair() as pair:
        with pytest.raises(NotSupportedError, match="veth has no zero-copy") as info:
            XskSocket(pair.b, mode="zerocopy")
        assert info.value.errno == errno.EOPNOTSUPP
        assert attached_programs(pair.b) == {}  # nothing left behind by the failed socket
        with XskSocket(pair.b, mode="copy") as rx:
            assert rx.bind_mode == "copy" and rx.fallback_reason is None


def test_queue_beyond_the_device() -> None:
    with VethPair(queues=2) as pair:
        with pytest.raises(ConfigError, match=r"queue 2 does not exist .* 2 queue\(s\), 0 to 1"):
            XskSocket(pair.b, queue=2)
        with XskSocket(pair.b, queue=1) as rx:
            assert rx.queue == 1


def test_second_socket_on_a_busy_queue() -> None:
    with VethPair() as pair, XskSocket(pair.b) as first:
        with pytest.raises(BindError, match="busy - another AF_XDP socket") as info:
            XskSocket(pair.b, program=first.program)
        assert info.value.errno == errno.EBUSY
        assert not first.closed


def test_frame_longer_than_a_umem_frame() -> None:
    with VethPair() as pair, XskSocket(pair.a, umem=Umem(frame_size=2048, frames=64)) as tx:
        with pytest.raises(ConfigError, match=r"frame 1 has 2049 bytes.*2048"):
            tx.send([b"x" * 64, b"y" * 2049])
        assert tx.rings()["tx"].producer == 0


def test_use_after_close() -> None:
    with VethPair() as pair:
        sock = XskSocket(pair.b)
        sock.close()
        sock.close()  # twice is fine
        for call in (lambda: sock.send([b"x" * 64]), sock.complete, sock.recv, sock.statistics,
                     sock.rings, sock.fileno, sock.kick, sock.counters):
            with pytest.raises(ClosedError, match="was closed"):
                call()
        umem = Umem(frames=64)
        umem.close()
        with pytest.raises(ClosedError):
            XskSocket(pair.b, umem=umem)


def test_umem_close_waits_for_its_sockets() -> None:
    with VethPair() as pair:
        umem = Umem(frames=256)
        sock = XskSocket(pair.b, umem=umem)
        umem.close()
        assert not umem.closed  # still used
        assert sock.rings()["fill"].producer == 128
        sock.close()
        assert umem.closed


@pytest.mark.parametrize("attach_mode", ["native", "generic"])
def test_teardown_repeated(attach_mode: str) -> None:
    """TEARDOWN: create, bind, pass traffic, close - again and again on the same queue (the
    EBUSY window right after close is absorbed by the bind retry)."""
    with VethPair() as pair, XskSocket(pair.a, attach_mode=attach_mode) as tx:  # type: ignore[arg-type]
        for round_ in range(10):
            with XskSocket(pair.b, attach_mode=attach_mode, umem=Umem(frames=256)) as rx:  # type: ignore[arg-type]
                data = frames(pair.a, pair.b, 50, start=round_ * 50)
                assert transfer(tx, rx, data) == data
            rx.umem.close()


def _map_ids_of(prog_id: int) -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return set(json.loads(out).get("map_ids", []))


def test_no_leaks_over_1000_cycles() -> None:
    """1,000 create/bind/close cycles leave no fd, ring or UMEM mapping, BPF program or map
    behind. 900 cycles reuse the redirect program a long-lived socket keeps attached; in the last
    100 every socket loads, attaches, detaches and frees its own. Queues rotate, so no bind waits
    for the kernel's asynchronous release of the previous socket."""
    with VethPair(queues=4) as pair:
        def cycle(queue: int) -> int:
            umem = Umem(frames=77)
            sock = XskSocket(pair.b, queue=queue, umem=umem, fill_size=64, comp_size=64,
                             rx_size=64, tx_size=64)
            assert sock.program is not None
            prog_id = sock.program.id
            sock.close()
            umem.close()
            assert umem.closed
            return prog_id

        for i in range(10):  # warm-up: imports, malloc arenas, thread stack caches
            cycle(i % 3)
        fds, anon = open_fds(), anon_rw_kib()
        start = time.monotonic()
        holder = XskSocket(pair.b, queue=3, umem=Umem(frames=64))
        assert holder.program is not None
        held_id = holder.program.id
        map_ids = _map_ids_of(held_id)
        assert {cycle(i % 3) for i in range(900)} == {held_id}
        holder.close()
        holder.umem.close()
        prog_ids = [cycle(i % 3) for i in range(100)]
        map_ids |= _map_ids_of(prog_ids[-1]) if prog_ids[-1] in bpf_ids("prog") else set()
        elapsed = time.monotonic() - start
        assert open_fds() == fds
        assert ring_mappings() == 0
        # A leaked 77-frame UMEM per cycle would be 300 MiB; allow for allocator noise only.
        assert anon_rw_kib() - anon < 48 * 1024
        assert attached_programs(pair.b) == {}
    assert len(set(prog_ids)) == 100
    alive = bpf_ids("prog")
    assert held_id not in alive and not set(prog_ids) & alive
    assert map_ids and not map_ids & bpf_ids("map")
    assert elapsed < 60, f"1000 cycles took {elapsed:.1f} s"


def test_shared_program_survives_a_user_program_close() -> None:
    """A socket given a user program leaves the program alone on close."""
    with VethPair() as pair, XdpProgram.load("redirect") as prog:
        prog.attach(pair.b)
        with XskSocket(pair.b, program=prog) as rx:
            assert rx.program is prog
        assert not prog.closed
        assert attached_programs(pair.b) == {"native": prog.id}


def test_missing_ring() -> None:
    with VethPair() as pair, XskSocket(pair.a, rx_size=0) as tx, XskSocket(pair.b, tx_size=0) as rx:
        with pytest.raises(ConfigError, match=r"no RX ring \(rx_size=0\)"):
            tx.recv()
        with pytest.raises(ConfigError, match=r"no TX ring \(tx_size=0\)"):
            rx.send([b"x" * 64])
        assert rx.rings()["tx"].present is False
        assert rx.rings()["fill"].producer == 2048  # an RX-only socket fills every ring slot


def test_a_dropped_socket_is_released_without_taking_locks_in_the_collector() -> None:
    """A socket dropped without close() inside a reference cycle: the garbage collector may run
    its finalizer while this thread holds the interface table's lock (as acquire_program does);
    that must neither deadlock nor touch C state, and the next set-up releases the socket."""
    import gc
    import threading

    from xdptest import xsk as xsk_module

    with VethPair() as pair:
        sock = XskSocket(pair.b)
        sock.cycle = sock  # type: ignore[attr-defined]  # only the cyclic collector can free it
        prog_id = sock.program.id  # type: ignore[union-attr]
        del sock

        def collect_under_the_lock() -> None:
            with xsk_module._interfaces.lock:
                gc.collect()

        worker = threading.Thread(target=collect_under_the_lock, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "the finalizer took a lock the collecting thread held"
        assert attached_programs(pair.b) != {}  # nothing released from inside the collector
        with XskSocket(pair.b) as again:  # releases the dropped one first, then binds its queue
            assert again.program is not None and again.program.id != prog_id
        assert attached_programs(pair.b) == {}


def test_closing_a_tx_only_socket_keeps_the_receivers_program() -> None:
    with VethPair(queues=2) as pair, XskSocket(pair.b) as rx:
        XskSocket(pair.b, queue=1, rx_size=0).close()  # attached nothing, so releases nothing
        assert attached_programs(pair.b) != {}
        with XskSocket(pair.a, rx_size=0) as tx:
            sent = frames(pair.a, pair.b, 10)
            send_all(tx, sent)
            assert recv_n(rx, 10) == sent


def _half_built(info: pytest.ExceptionInfo[ConfigError], cls: type) -> object:
    return next(e.frame.f_locals["self"] for e in info.traceback
                if isinstance(e.frame.f_locals.get("self"), cls))


def test_repr_of_a_half_built_object_names_what_it_is() -> None:
    """A constructor that refuses its arguments leaves an object that pytest's --showlocals and
    debuggers print: its repr must work."""
    with pytest.raises(ConfigError) as info:
        Umem(frames=0)
    assert repr(_half_built(info, Umem)).startswith("Umem(0 x 4096 B")
    with VethPair() as pair, pytest.raises(ConfigError) as info:
        XskSocket(pair.a, rx_size=3)
    assert "queue=0, closed" in repr(_half_built(info, XskSocket))
