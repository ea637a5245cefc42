"""What the receiver must see: the frames expected after a program that rewrites on purpose.

``expect`` is either a function ``fn(frame: bytes) -> bytes`` that maps a frame as sent to the
frame the receiver must see, or field rules such as ``ip.ttl-=1`` (``xdptest-gen --expect``).
Either is applied once per template, never per frame: the varied fields (``--vary``) and the
stamp are written on top of each expected template by the verifier's generator, in C. A field
that is both varied and rewritten therefore keeps its varied value.

Rules: ``LAYER.FIELD=VALUE``, ``LAYER.FIELD+=N``, ``LAYER.FIELD-=N``, where LAYER is one of
``eth``, ``vlan``, ``ip``, ``ipv6``, ``udp``, ``tcp``, ``icmp`` and FIELD a scapy field name of
that layer (``ip.ttl``, ``eth.dst``, ``udp.dport``, ``ipv6.hlim``...). After the rules, IP and
L4 checksums are recomputed, as a correct rewriting program keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xdptest import packets
from xdptest.errors import ConfigError

ExpectFn = Callable[[bytes], Any]  # returns bytes, or anything bytes() takes (a scapy packet)
Expect = ExpectFn | str | Sequence[str] | None
LAYERS = {"eth": "Ether", "vlan": "Dot1Q", "ip": "IP", "ipv6": "IPv6", "udp": "UDP", "tcp": "TCP",
          "icmp": "ICMP"}
_RULE = re.compile(r"\s*([a-z0-9]+)\.([a-z_0-9]+)\s*(\+=|-=|=)\s*(\S.*?)\s*")


@dataclass(frozen=True)
class Rule:
    layer: str  # a key of LAYERS
    field: str
    op: str  # "=", "+=", "-="
    value: str

    def __str__(self) -> str:
        return f"{self.layer}.{self.field}{self.op}{self.value}"


def _layer_class(name: str) -> Any:
    import scapy.layers.all as layers

    return getattr(layers, LAYERS[name])


def parse_rule(text: str) -> Rule:
    """``ip.ttl-=1`` -> Rule; an unknown layer or field is a ConfigError naming the known ones."""
    m = _RULE.fullmatch(text)
    if not m:
        raise ConfigError(f"--expect {text!r}: use LAYER.FIELD=VALUE, LAYER.FIELD+=N or LAYER.FIELD-=N, "
                          "e.g. ip.ttl-=1")
    rule = Rule(*m.groups())
    if rule.layer not in LAYERS:
        raise ConfigError(f"--expect {text!r}: unknown layer {rule.layer!r}; layers: {', '.join(LAYERS)}")
    names = [f.name for f in _layer_class(rule.layer).fields_desc]
    if rule.field not in names:
        raise ConfigError(f"--expect {text!r}: {LAYERS[rule.layer]} has no field {rule.field!r}; "
                          f"its fields: {', '.join(names)}")
    if rule.op != "=":
        _int(rule)
    return rule


def _int(rule: Rule) -> int:
    try:
        return int(rule.value, 0)
    except ValueError:
        raise ConfigError(f"--expect {rule}: {rule.value!r} is not an integer") from None


def _value(rule: Rule) -> Any:
    try:
        return int(rule.value, 0)
    except ValueError:
        return rule.value  # addresses and names: scapy converts them


def _recompute_checksums(pkt: Any) -> None:
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    for cls in (IP, UDP, TCP, ICMP):
        layer = pkt.getlayer(cls)
        if layer is None:
            continue
        if cls is UDP and layer.chksum == 0 and pkt.getlayer(IP) is not None:
            continue  # an IPv4 UDP frame sent without a checksum stays without one
        layer.chksum = None


def rules_function(rules: Sequence[Rule]) -> ExpectFn:
    """A function applying the rules to a frame (checksums recomputed)."""
    def apply(frame: bytes) -> bytes:
        from scapy.layers.l2 import Ether

        pkt = Ether(frame)
        for rule in rules:
            layer = pkt.getlayer(_layer_class(rule.layer))
            if layer is None:
                raise ConfigError(f"--expect {rule}: the packet has no {LAYERS[rule.layer]} layer")
            if rule.op == "=":
                value = _value(rule)
            else:
                current = layer.getfieldval(rule.field)
                if not isinstance(current, int):
                    raise ConfigError(f"--expect {rule}: {rule.layer}.{rule.field} is not a number "
                                      f"({current!r}); use {rule.layer}.{rule.field}=VALUE")
                delta = _int(rule)
                value = current + delta if rule.op == "+=" else current - delta
            layer.setfieldval(rule.field, value)
        _recompute_checksums(pkt)
        try:
            return bytes(pkt)
        except Exception as exc:  # a value out of the field's range, an address scapy cannot read
            raise ConfigError(f"--expect {', '.join(map(str, rules))}: cannot build the expected frame: "
                              f"{exc.__class__.__name__}: {exc}") from None

    return apply


def expect_function(expect: Expect) -> ExpectFn | None:
    """The function behind ``expect`` (None: the frames arrive as sent)."""
    if expect is None or (not callable(expect) and not expect):
        return None
    if callable(expect):
        return expect
    texts = [expect] if isinstance(expect, str) else list(expect)
    if not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"expect={expect!r}: give a function fn(frame) -> frame or rules like 'ip.ttl-=1'")
    return rules_function([parse_rule(t) for t in texts])


def expected_templates(templates: Sequence[packets.Template], varies: Sequence[packets.Vary],
                       expect: Expect) -> list[packets.Template]:
    """The frame the receiver must see for each template; checks, before any traffic, that each
    still has room for the stamp and every varied field."""
    fn = expect_function(expect)
    if fn is None:
        return list(templates)
    out: list[packets.Template] = []
    for i, t in enumerate(templates):
        try:
            frame = bytes(fn(t.frame))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"expect: the function failed on template {i} "
                              f"({exc.__class__.__name__}: {exc})") from None
        e = packets.analyse(frame)
        if e.size < e.stamp_offset + packets.STAMP_SIZE:
            raise ConfigError(f"expect: the expected frame of template {i} is {e.size} bytes, too short "
                              f"for the stamp after its {e.stamp_offset} bytes of headers")
        for v in varies:
            if v.kind != packets.KIND_SIZE:
                try:
                    packets.resolve(v, e)
                except ConfigError as exc:
                    raise ConfigError(f"expect: in the expected frame of template {i}: {exc}") from None
        out.append(e)
    return out
