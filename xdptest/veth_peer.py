"""The veth ``XDP_TX`` trap, handled by construction for the kit's veth pairs.

Measured on 6.18 (and read in ``drivers/net/veth.c``): a frame an XDP program sends back with
``XDP_TX`` goes into the peer's XDP ring, but the peer's NAPI is woken for it only when the peer
itself runs an XDP program. Without one the frame waits, unseen, until something else wakes that
NAPI - for a ping answered by an ``XDP_TX`` responder, never: 3 replies counted by the program, 0
received. GRO on the peer (which the kit turns on) does not change it; redirects into a veth
(``bpf_redirect``, DEVMAP) do arrive with GRO on, because ``ndo_xdp_xmit`` wakes the peer itself.

So when a program is attached natively to one end of a kit veth pair, the kit attaches its
built-in ``pass`` program (``XDP_PASS``, nothing else) to the other end if that end has no XDP
program: the peer's stack sees every frame as before. The keeper steps aside when a program is
attached to that end, comes back when that program leaves while the other end still needs it,
and goes when the program that needed it is detached.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xdptest.errors import XdpTestError

if TYPE_CHECKING:
    from xdptest.bpf import Attachment, XdpProgram
    from xdptest.netns import Endpoint

Key = tuple[str, int]  # (namespace, ifindex) of the end that gets the keeper


@dataclass
class _Peer:
    endpoint: Endpoint
    needed_by: set[int] = field(default_factory=set)  # ids of native attachments on the other end
    keeper: XdpProgram | None = None
    keeper_attachment: Attachment | None = None


_lock = threading.RLock()
_peers: dict[Key, _Peer] = {}
_keeping: dict[int, Key] = {}  # attachment id -> the peer it needs


def _key(endpoint: Endpoint) -> Key:
    return (endpoint.netns.name or "", endpoint.ifindex)


def needed(attachment: Attachment, peer: Endpoint) -> None:
    """A native program was attached to the end whose peer is ``peer``."""
    with _lock:
        state = _peers.setdefault(_key(peer), _Peer(peer))
        state.needed_by.add(id(attachment))
        _keeping[id(attachment)] = _key(peer)
        _refresh(state)


def released(attachment: Attachment) -> None:
    """An attachment went: drop what it needed, and bring back a keeper it had displaced."""
    with _lock:
        key = _keeping.pop(id(attachment), None)
        if key is not None and key in _peers:
            _peers[key].needed_by.discard(id(attachment))
            _refresh(_peers[key])
        here = _peers.get((attachment.iface.netns or "", attachment.iface.ifindex))
        if here is not None and here.keeper_attachment is not attachment:
            _refresh(here)


def make_way(netns: str | None, ifindex: int) -> None:
    """A program is about to be attached here: a keeper on this interface steps aside."""
    with _lock:
        state = _peers.get((netns or "", ifindex))
        if state is not None:
            _remove_keeper(state)


def _refresh(state: _Peer) -> None:
    from xdptest.bpf import XdpProgram, attached_programs

    try:
        others = {pid for pid in attached_programs(state.endpoint).values()
                  if state.keeper is None or pid != state.keeper.id}
    except Exception:  # the interface or its namespace is gone (netlink says so its own way)
        _remove_keeper(state)
        _peers.pop(_key(state.endpoint), None)
        return
    wanted = bool(state.needed_by) and not others
    if wanted and state.keeper is None:
        keeper = XdpProgram.load("pass")
        try:
            state.keeper_attachment = keeper._attach_keeper(state.endpoint)
        except XdpTestError:
            keeper.close()  # e.g. queue counts that native XDP refuses: the trap stays, as without us
            return
        state.keeper = keeper
    elif not wanted:
        _remove_keeper(state)
        if not state.needed_by:
            _peers.pop(_key(state.endpoint), None)


def _remove_keeper(state: _Peer) -> None:
    keeper, state.keeper, state.keeper_attachment = state.keeper, None, None
    if keeper is not None:
        with contextlib.suppress(XdpTestError, OSError):
            keeper.close()


def keeper_of(endpoint: Endpoint) -> int | None:
    """The id of the keeper program on ``endpoint``, if the kit put one there."""
    with _lock:
        state = _peers.get(_key(endpoint))
        return state.keeper.id if state is not None and state.keeper is not None else None


def attach_failed(netns: str | None, ifindex: int) -> None:
    """The program that a keeper made way for could not be attached: bring the keeper back."""
    with _lock:
        state = _peers.get((netns or "", ifindex))
        if state is not None:
            _refresh(state)
