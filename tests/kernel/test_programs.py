"""Loading objects, choosing programs, maps, BPF_PROG_TEST_RUN and the errors around them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from xdptest import (
    BUILTIN_PROGRAMS,
    BpfObjectError,
    ClosedError,
    ConfigError,
    MapNotFoundError,
    ProgramNotFoundError,
    VerifierError,
    XdpAction,
    XdpProgram,
    builtin_program_path,
)
from xdptest._native.bpf import possible_cpus
from xdptest.builtin import action_counts, set_count_action, single_counter

FRAME = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="198.18.0.1", dst="198.18.0.2")
              / UDP(sport=1234, dport=9) / (b"p" * 18))


@pytest.mark.parametrize(("name", "action"), [
    ("pass", XdpAction.PASS), ("drop", XdpAction.DROP), ("tx", XdpAction.TX),
    ("count", XdpAction.PASS), ("redirect", XdpAction.PASS),  # no socket in xsks_map: pass
])
def test_builtin_verdicts(xdp_program, name: str, action: XdpAction) -> None:
    result = xdp_program(name).run(FRAME)
    assert result.action is action
    assert result.duration_ns >= 0


def test_every_builtin_is_shipped() -> None:
    for name in BUILTIN_PROGRAMS:
        assert builtin_program_path(name).read_bytes()[:4] == b"\x7fELF"


def test_tx_swaps_macs_in_the_output(xdp_program) -> None:
    result = xdp_program("tx").run(FRAME)
    assert result.packet[Ether].src == "02:00:00:00:00:02"
    assert result.packet[Ether].dst == "02:00:00:00:00:01"
    assert result.data[12:] == FRAME[12:]


def test_run_accepts_scapy_packets_and_repeats(xdp_program) -> None:
    prog = xdp_program("count")
    pkt = Ether() / IP(dst="198.18.0.2") / UDP()
    result = prog.run(pkt, repeat=1000)
    assert result.action is XdpAction.PASS
    assert action_counts(prog)[XdpAction.PASS].packets == 1000
    assert action_counts(prog)[XdpAction.PASS].bytes == 1000 * len(bytes(pkt))


def test_count_returns_the_configured_action(xdp_program) -> None:
    prog = xdp_program("count")
    set_count_action(prog, XdpAction.DROP)
    assert prog.run(FRAME, repeat=5).action is XdpAction.DROP
    counts = action_counts(prog)
    assert counts[XdpAction.DROP].packets == 5 and counts[XdpAction.PASS].packets == 0


def test_drop_counts_what_it_dropped(xdp_program) -> None:
    prog = xdp_program("drop")
    prog.run(FRAME, repeat=7)
    assert single_counter(prog).packets == 7


@pytest.mark.requires_feature("test_run_context")
def test_redirect_counts_per_queue(xdp_program) -> None:
    from xdptest.builtin import queue_stats

    prog = xdp_program("redirect")
    prog.run(FRAME, rx_queue=0, repeat=3)
    assert queue_stats(prog, 0).passed == 3
    assert queue_stats(prog, 0).redirected == 0


def test_too_short_packet_is_refused(xdp_program) -> None:
    with pytest.raises(ConfigError, match="Ethernet header"):
        xdp_program("pass").run(b"\x00" * 10)


def test_maps_lookup_update_delete_items(xdp_program, fixtures_dir: Path) -> None:
    prog = xdp_program(fixtures_dir / "bpf" / "two_xdp.bpf.c", program="xt_fixture_first")
    scratch = prog.maps["scratch"]
    assert (scratch.key_size, scratch.value_size, scratch.max_entries) == (4, 8, 16)
    assert scratch.lookup(1) is None
    scratch.update(1, 100)
    scratch.update(2, (200).to_bytes(8, "little"))
    assert scratch.lookup(1) == 100
    assert sorted(scratch.items()) == [(1, 100), (2, 200)]
    assert scratch.delete(1) is True
    assert scratch.delete(1) is False
    assert list(scratch.keys()) == [2]


def test_per_cpu_maps_return_one_value_per_cpu(xdp_program) -> None:
    prog = xdp_program("count")
    counters = prog.maps["counters"]
    assert counters.per_cpu
    values = counters.lookup(int(XdpAction.PASS))
    assert len(values) == possible_cpus()
    counters.update(int(XdpAction.PASS), [bytes(16)] * possible_cpus())


def test_wrong_key_and_value_sizes_are_explained(xdp_program) -> None:
    prog = xdp_program("count")
    with pytest.raises(ConfigError, match="key has 3 bytes, the map's key size is 4"):
        prog.maps["config"].lookup(b"abc")
    with pytest.raises(ConfigError, match="does not fit in 4 bytes"):
        prog.maps["config"].update(0, 2**40)
    with pytest.raises(MapNotFoundError, match="maps: config, counters"):
        prog.maps["nope"]


def test_verifier_rejection_carries_the_log(fixtures_dir: Path) -> None:
    with pytest.raises(VerifierError) as info:
        XdpProgram.load(fixtures_dir / "bpf" / "verifier_reject.bpf.c")
    assert "invalid access to packet" in info.value.log
    assert "verifier rejected" in str(info.value)


def test_object_without_xdp_program_lists_what_it_has(fixtures_dir: Path) -> None:
    with pytest.raises(ProgramNotFoundError, match=r"no XDP program.*xt_fixture_tc \(section tc\)"):
        XdpProgram.load(fixtures_dir / "bpf" / "no_xdp.bpf.c")


def test_several_xdp_programs_need_a_choice(fixtures_dir: Path, xdp_program) -> None:
    src = fixtures_dir / "bpf" / "two_xdp.bpf.c"
    with pytest.raises(ProgramNotFoundError, match="xt_fixture_first, xt_fixture_second"):
        XdpProgram.load(src)
    with pytest.raises(ProgramNotFoundError, match="no program 'third'"):
        XdpProgram.load(src, program="third")
    assert xdp_program(src, program="xt_fixture_second").run(FRAME).action is XdpAction.DROP


def test_not_an_elf_names_the_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.o"
    bogus.write_bytes(b"this is not an ELF file")
    with pytest.raises(BpfObjectError, match=re.escape(str(bogus))):
        XdpProgram.load(bogus)
    with pytest.raises(BpfObjectError, match=r"no such file.*built-in name"):
        XdpProgram.load(tmp_path / "missing.o")
    with pytest.raises(ProgramNotFoundError, match="built-ins are"):
        builtin_program_path("nope")


def test_closed_program_refuses_use() -> None:
    prog = XdpProgram.load("count")
    counters = prog.maps["counters"]
    prog.close()
    prog.close()
    with pytest.raises(ClosedError):
        prog.run(FRAME)
    with pytest.raises(ClosedError):
        prog.attach("lo")
    with pytest.raises(ClosedError):
        counters.lookup(0)


def test_program_ids_and_fds_are_real(xdp_program) -> None:
    prog = xdp_program("pass")
    assert prog.id > 0
    assert os.readlink(f"/proc/self/fd/{prog.fd}") == "anon_inode:bpf-prog"


def test_legacy_xdp_section_names_load_as_xdp(xdp_program, fixtures_dir: Path) -> None:
    """SEC("xdp_foo"), which libbpf 1.0 stopped recognising, is still an XDP program to the kit."""
    prog = xdp_program(fixtures_dir / "bpf" / "legacy_section.bpf.c")
    assert (prog.name, prog.section) == ("xt_fixture_legacy", "xdp_drop_legacy")
    assert prog.run(bytes(64)).action == XdpAction.DROP
