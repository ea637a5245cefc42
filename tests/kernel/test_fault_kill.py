"""SIGKILL survived: a process of the kit killed in the middle of traffic cleans nothing up, and
the kit's reaper then removes all it left (namespaces, their veth pairs, the XDP programs
attached to them).

Each killed process records its namespaces in a private state directory (XDPTEST_STATE_DIR):
otherwise the reaper of any other kit process running at the same time (a parallel test worker)
could remove them first, and the test could not tell who cleaned up. The reaper under test is
pointed at that directory; a ``finally`` removes whatever a failing test would otherwise leak.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xdptest import registry
from xdptest.netns import _remove_netns, reap_leftovers

NETNS_DIR = Path("/run/netns")
LEFTOVERS = Path(sys.executable).parent / "xdptest-leftovers"


def _netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _links(netns: str) -> list[dict[str, Any]]:
    """``ip -j link show`` inside a namespace ([] once it is gone)."""
    out = subprocess.run(["ip", "-n", netns, "-j", "-s", "link", "show"], capture_output=True, text=True,
                         timeout=10, check=False)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []


def _xdp_program_ids(link: dict[str, Any]) -> set[int]:
    xdp = link.get("xdp") or {}
    ids = {xdp["prog"]["id"]} if "prog" in xdp else set()
    return ids | {a["prog"]["id"] for a in xdp.get("attached", []) if "prog" in a}


def _program_exists(prog_id: int) -> bool:
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True,
                          timeout=10, check=False).returncode == 0


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class _Seen:
    """What a killed process had: namespaces, its links there, the XDP programs on them."""

    def __init__(self) -> None:
        self.netns: set[str] = set()
        self.links: set[str] = set()
        self.programs: set[int] = set()

    def look(self, netns: list[str]) -> int:
        """Note the namespaces' links and attached programs; returns the frames received by the
        interface that has a program attached (the receiving end of the traffic)."""
        received = 0
        for name in netns:
            self.netns.add(name)
            for link in _links(name):
                if link["ifname"] == "lo":
                    continue
                self.links.add(link["ifname"])
                ids = _xdp_program_ids(link)
                self.programs |= ids
                if ids:
                    received += int(link["stats64"]["rx"]["packets"])
        return received

    def assert_gone(self) -> None:
        assert self.netns and self.links and self.programs, "nothing was seen while it ran"
        assert not [n for n in self.netns if _netns_exists(n)]
        assert not self.links & set(os.listdir("/sys/class/net"))
        # The kernel frees a removed namespace's devices (and their programs) asynchronously.
        _wait(lambda: not any(_program_exists(p) for p in self.programs), 20,
              f"programs {sorted(self.programs)} to be freed")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state directory; the reaper of this process reads it. At the end, namespaces
    still recorded there (a failed test) are removed."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(registry, "STATE_DIR", state)
    yield state
    for path in state.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            for name in json.loads(path.read_text()).get("netns", []):
                with contextlib.suppress(FileNotFoundError):
                    _remove_netns(name)


def _reap_and_check(seen: _Seen) -> None:
    assert seen.netns and all(_netns_exists(n) for n in seen.netns), "SIGKILL: nothing was cleaned"
    removed = reap_leftovers()
    assert seen.netns <= set(removed)
    seen.assert_gone()


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what this test started
    proc.wait(timeout=30)


def test_killed_xdptest_gen_leaves_what_the_reaper_removes(state_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, XDPTEST_STATE_DIR=str(state_dir))
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xdptest.cli", "--duration", "60", "--rate", "5000"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    seen = _Seen()
    try:
        record = state_dir / f"{proc.pid}.json"
        netns: list[str] = []

        def topology_built() -> bool:
            nonlocal netns
            assert proc.poll() is None, stderr.read_text()
            with contextlib.suppress(OSError, ValueError):
                netns = json.loads(record.read_text())["netns"]
            return len(netns) == 2

        _wait(topology_built, 60, "xdptest-gen to record two namespaces")
        first = seen.look(netns)
        _wait(lambda: seen.look(netns) >= first + 2000, 30, "traffic to flow")  # about 0.4 s of it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert record.exists()  # nobody cleaned up: the record is still there
        _reap_and_check(seen)
        assert not list(state_dir.iterdir())  # the reaper took the record too
    finally:
        _stop(proc)


INNER_TEST = textwrap.dedent('''
    import json, os, time

    def test_loop(veth_pair, traffic):
        seen = {"pid": os.getpid(), "netns": []}
        for _ in range(20):
            pair = veth_pair()
            seen["netns"] += [pair.a.netns.name, pair.b.netns.name]
            with open(os.environ["XT_SEEN"] + ".tmp", "w") as f:
                json.dump(seen, f)
            os.replace(os.environ["XT_SEEN"] + ".tmp", os.environ["XT_SEEN"])
            traffic(pair.a, pair.b, count=5000, rate=5000)
        time.sleep(120)  # the kill lands here at the latest
''')


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_killed_pytest_worker_leaves_what_the_reaper_removes(pytester: pytest.Pytester, state_dir: Path) -> None:
    """pytest -n 1: the worker is SIGKILLed in the middle of its test's traffic, the controller
    reports it crashed; the next run of the reaper removes everything and xdptest-leftovers
    finds nothing of it."""
    seen_file = pytester.path / "seen.json"
    pytester.makepyfile(test_inner=INNER_TEST)
    env = dict(os.environ, XT_SEEN=str(seen_file), XDPTEST_STATE_DIR=str(state_dir))
    output = pytester.path / "output.txt"
    with output.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "1", "-q",
                                 str(pytester.path / "test_inner.py")],
                                cwd=pytester.path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    seen = _Seen()
    try:
        body: dict[str, Any] = {}

        def pairs_in_traffic() -> bool:
            nonlocal body
            assert proc.poll() is None, output.read_text()
            with contextlib.suppress(OSError, ValueError):
                body = json.loads(seen_file.read_text())
            netns = body.get("netns", [])
            if len(netns) < 6:
                return False
            seen.look(netns[:-2])
            return seen.look(netns[-2:]) > 0  # the third pair's receiver has its program: mid-traffic

        _wait(pairs_in_traffic, 90, "the worker's third pair to carry traffic")
        worker = int(body["pid"])
        assert worker != proc.pid and _ppid(worker) == proc.pid  # the worker, a child of the run
        os.kill(worker, signal.SIGKILL)
        proc.wait(timeout=60)
        text = output.read_text()
        assert proc.returncode == 1, text
        assert "crashed" in text, text
        _reap_and_check(seen)
        assert seen.netns == set(body["netns"])
        env_check = {k: v for k, v in os.environ.items() if k != "XDPTEST_STATE_DIR"}
        check = subprocess.run([str(LEFTOVERS), "--check"], capture_output=True, text=True, env=env_check,
                               timeout=60, check=False)
        mine = [line for line in check.stdout.splitlines()
                if any(name in line for name in seen.netns | seen.links)
                or any(f"(id {p})" in line for p in seen.programs)]
        assert mine == [], check.stdout
        # Leftovers of other kit users running at the same time may be listed; none of ours is.
        assert check.returncode == 0 or "left behind" in check.stdout, check.stdout + check.stderr
    finally:
        _stop(proc)
