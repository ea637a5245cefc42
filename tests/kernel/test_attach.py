"""Attaching programs to real veth ends and moving real packets through them."""

from __future__ import annotations

import pytest

from tests.kernel import udp
from xdptest import AttachError, ConfigError, InterfaceNotFoundError, NotSupportedError, XdpAction
from xdptest.bpf import attached_programs
from xdptest.builtin import action_counts, set_count_action, single_counter

MODES = ["native", "generic"]


@pytest.mark.parametrize("mode", MODES)
def test_count_program_counts_every_udp_datagram(veth_pair, xdp_program, mode: str) -> None:
    pair = veth_pair()
    prog = xdp_program("count")
    att = prog.attach(pair.b, mode=mode)
    assert attached_programs(pair.b) == {mode: prog.id}
    with udp.open_receiver(pair.b) as rx:
        udp.send(pair.a, pair.b, rx.getsockname()[1], 200)
        got = udp.drain(rx, 200)
    assert len(got) == 200
    counts = action_counts(prog)
    assert counts[XdpAction.PASS].packets == 200
    assert counts[XdpAction.PASS].bytes == 200 * (14 + 20 + 8 + 26)
    att.detach()
    assert attached_programs(pair.b) == {}


@pytest.mark.parametrize("mode", MODES)
def test_drop_really_drops(veth_pair, xdp_program, mode: str) -> None:
    pair = veth_pair()
    prog = xdp_program("drop")
    prog.attach(pair.b, mode=mode)
    with udp.open_receiver(pair.b) as rx:
        udp.send(pair.a, pair.b, rx.getsockname()[1], 50)
        got = udp.drain(rx, 1, timeout=0.3)
    assert got == []
    assert single_counter(prog).packets == 50


def test_tx_reflects_frames_back_to_the_sender(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    reflector = xdp_program("tx")
    reflector.attach(pair.b, mode="native")
    back = xdp_program("count")
    set_count_action(back, XdpAction.DROP)
    back.attach(pair.a, mode="native")
    udp.send(pair.a, pair.b, 9, 40)
    udp.drain(pair.a.udp_socket(), 0)  # nothing to receive: only let the frames come back
    assert single_counter(reflector).packets == 40
    assert action_counts(back)[XdpAction.DROP].packets == 40


def test_default_mode_comes_from_the_override_fixture(veth_pair, xdp_program, xdp_attach_mode) -> None:
    pair = veth_pair()
    att = xdp_program("pass").attach(pair.b)
    assert att.mode == xdp_attach_mode == "native"
    assert set(attached_programs(pair.b)) == {"native"}


def test_native_and_generic_cannot_be_active_together(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    native, generic = xdp_program("count"), xdp_program("count")
    native.attach(pair.b, mode="native")
    with pytest.raises(AttachError, match="can't be active at the same time"):
        generic.attach(pair.b, mode="generic")
    assert attached_programs(pair.b) == {"native": native.id}


def test_attach_never_clobbers_another_program(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    first, second = xdp_program("pass"), xdp_program("drop")
    first_att = first.attach(pair.b)
    with pytest.raises(AttachError, match="already has an XDP program attached"):
        second.attach(pair.b)
    second.attach(pair.b, replace=True)
    assert attached_programs(pair.b) == {"native": second.id}
    first_att.detach()  # ours is gone already: leaves the replacement alone
    assert attached_programs(pair.b) == {"native": second.id}


def test_close_detaches_everywhere(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    prog = xdp_program("pass")
    prog.attach(pair.a, mode="generic")
    prog.attach(pair.b, mode="native")
    prog.close()
    assert attached_programs(pair.a) == {} and attached_programs(pair.b) == {}


def test_attach_by_name_in_a_namespace(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    prog = xdp_program("pass")
    att = prog.attach(pair.b.ifname, netns=pair.b.netns)
    assert att.iface.ifindex == pair.b.ifindex
    with pytest.raises(InterfaceNotFoundError, match="no interface 'nope0' in namespace"):
        prog.attach("nope0", netns=pair.b.netns)


def test_native_attach_needs_rx_queues_for_the_peers_tx_queues(veth_pair, xdp_program) -> None:
    pair = veth_pair(rx_queues=1, tx_queues=4)
    with pytest.raises(AttachError, match="rx queues not less than peer tx queues"):
        xdp_program("pass").attach(pair.b, mode="native")


def test_offload_on_veth_is_not_supported(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    with pytest.raises(NotSupportedError, match="offload"):
        xdp_program("pass").attach(pair.b, mode="offload")


def test_multi_queue_pair_counts_on_all_queues(veth_pair, xdp_program) -> None:
    pair = veth_pair(queues=2)
    prog = xdp_program("count")
    prog.attach(pair.b, mode="native")
    with udp.open_receiver(pair.b) as rx:
        udp.send(pair.a, pair.b, rx.getsockname()[1], 30)
        assert len(udp.drain(rx, 30)) == 30
    assert action_counts(prog)[XdpAction.PASS].packets == 30


def test_attach_through_a_bpf_link(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    prog = xdp_program("count")
    att = prog.attach(pair.b, mode="native", link=True)
    assert att.link_fd >= 0 and attached_programs(pair.b) == {"native": prog.id}
    with pair.a.udp_socket() as tx:
        for _ in range(4):
            tx.sendto(b"linked", (pair.b.ipv4, 9))
    assert action_counts(prog)[XdpAction.PASS].packets == 4
    other = xdp_program("drop")
    named = rf"already has an XDP program attached: xt_count_prog \(id {prog.id}, native\)"
    with pytest.raises(AttachError, match=named):
        other.attach(pair.b, replace=True)  # a link cannot be replaced behind its owner's back
    att.detach()
    assert attached_programs(pair.b) == {}


def test_a_second_program_is_refused_naming_the_one_attached(veth_pair, xdp_program) -> None:
    pair = veth_pair()
    first, second = xdp_program("pass"), xdp_program("drop")
    first.attach(pair.b, mode="generic")
    for link in (False, True):
        with pytest.raises(AttachError, match=rf"xt_pass \(id {first.id}, generic\)"):
            second.attach(pair.b, mode="generic", link=link)
    with pytest.raises(ConfigError, match="a BPF link never replaces"):
        second.attach(pair.b, link=True, replace=True)
