"""Pinned maps (LIBBPF_PIN_BY_NAME) under the kit's private bpffs: shared on purpose, never
leaked, reaped after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from xdptest import ConfigError, XdpProgram, registry
from xdptest.leftovers import find
from xdptest.netns import reap_leftovers
from xdptest.pins import PinRoot, leftover_roots

PASS = ROOT / "examples" / "pinned_stats" / "xdp_pass_counted.c"
DROP = ROOT / "examples" / "pinned_stats" / "xdp_drop_counted.c"


def test_programs_loaded_with_one_root_share_the_pinned_map_and_close_removes_it() -> None:
    root = PinRoot()
    assert not root.mounted
    with XdpProgram.load(PASS, pin_root=root) as a, XdpProgram.load(DROP, pin_root=root) as b:
        assert root.mounted and str(root.path) in leftover_roots()
        assert root.pins() == ["xdp_stats_map"]
        a.maps["xdp_stats_map"].update(2, bytes(8) + (7).to_bytes(8, "little"))
        assert b.maps["xdp_stats_map"].lookup(2)[8:] == (7).to_bytes(8, "little")  # one map
        path = root.path
    root.close()
    assert not path.exists() and str(path) not in leftover_roots()


def test_a_program_without_pinned_maps_mounts_nothing() -> None:
    root = PinRoot()
    with XdpProgram.load("count", pin_root=root):
        assert not root.mounted


def test_separate_roots_keep_separate_maps() -> None:
    first, second = PinRoot(), PinRoot()
    try:
        with XdpProgram.load(PASS, pin_root=first) as a, XdpProgram.load(PASS, pin_root=second) as b:
            a.maps["xdp_stats_map"].update(2, (5).to_bytes(16, "little"))
            assert b.maps["xdp_stats_map"].lookup(2) == bytes(16)
    finally:
        first.close()
        second.close()


def test_an_explicit_directory_is_used_as_it_is() -> None:
    mine = PinRoot()
    try:
        with XdpProgram.load(PASS, pin_root=str(mine.path)):
            assert (mine.path / "xdp_stats_map").exists()
        with pytest.raises(ConfigError, match="no such directory"):
            XdpProgram.load(PASS, pin_root="/no/such/bpffs")
    finally:
        mine.close()


def test_the_pin_root_of_a_killed_process_is_reaped(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    code = textwrap.dedent(f'''
        import json, time
        from xdptest import XdpProgram
        prog = XdpProgram.load({str(PASS)!r})
        json.dump({{"mounted": True}}, open({str(ready)!r}, "w"))
        time.sleep(60)
    ''')
    proc = subprocess.Popen([sys.executable, "-c", code])
    record = registry.STATE_DIR / f"{proc.pid}.json"
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        roots = json.loads(record.read_text())["pins"]
        assert len(roots) == 1 and roots[0] in leftover_roots()
        assert os.listdir(roots[0])  # the pin is there
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert roots[0] in find().pin_roots  # dead owner: a leftover
    assert roots[0] in reap_leftovers()
    assert roots[0] not in leftover_roots() and not Path(roots[0]).exists()


def test_with_a_bpffs_at_sys_fs_bpf_nothing_is_pinned_there(tmp_path: Path) -> None:
    """Where the machine mounts bpffs at /sys/fs/bpf (here in a private mount namespace), the kit
    still pins into its own root, and /sys/fs/bpf stays as it was."""
    code = textwrap.dedent(f'''
        import os
        from xdptest import XdpProgram
        with XdpProgram.load({str(PASS)!r}) as prog:
            assert prog.maps["xdp_stats_map"].lookup(2) == bytes(16)
            print("during:", sorted(n for n in os.listdir("/sys/fs/bpf") if not n.endswith(".debug")))
    ''')
    (tmp_path / "load.py").write_text(code)
    script = f"mount -t bpf bpf /sys/fs/bpf && {sys.executable} {tmp_path / 'load.py'} && ls /sys/fs/bpf"
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "during: []" in done.stdout
    assert "xdp_stats_map" not in done.stdout
