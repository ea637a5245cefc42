"""Property-based test of an XDP program: hypothesis draws frames, a Python model predicts the
verdict, BPF_PROG_TEST_RUN gives the real one. No namespace or interface is needed."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings

from xdptest import XdpAction
from xdptest.strategies import frames

PROGRAM = str(Path(__file__).with_name("ttl_guard.bpf.c"))


def model(frame: bytes) -> XdpAction:
    """What ttl_guard should do, written from its specification."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return XdpAction.PASS
    if frame[14] & 0x0F < 5:
        return XdpAction.DROP
    return XdpAction.DROP if frame[14 + 8] <= 1 else XdpAction.PASS


# xdp_run loads the program once and is stateless per run, so sharing it across examples is safe.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames(malformed=True))
def test_ttl_guard_matches_its_model(xdp_run, frame):
    assert xdp_run(PROGRAM, frame).action == model(frame)
