"""Names and the record of what a process created (no root needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xdptest import registry


def test_names_start_with_xt_and_fit_ifnamsiz_with_suffix() -> None:
    names = {registry.new_name("v") for _ in range(2000)}
    assert len(names) == 2000
    for name in names:
        assert name.startswith("xt")
        assert len(name + "a") <= 15


def test_child_processes_get_another_token() -> None:
    code = "import os, sys; from xdptest import registry; print(registry.new_name('n'))"
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() for _ in range(4)}
    assert len(out) == 4
    # after fork too: the token is renewed in the child
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, registry.new_name("n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    assert child[2:7] != registry.new_name("n")[2:7]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "STATE_DIR", tmp_path)
    return tmp_path


def test_record_and_forget_keep_a_file_per_process(state_dir: Path) -> None:
    registry.record("xtunit1")
    body = json.loads((state_dir / f"{os.getpid()}.json").read_text())
    assert body["pid"] == os.getpid()
    assert "xtunit1" in body["netns"]
    registry.forget("xtunit1")
    assert not (state_dir / f"{os.getpid()}.json").exists()


def test_reaper_removes_what_a_dead_process_recorded(state_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(proc.stdout)
    (state_dir / f"{dead}.json").write_text(
        json.dumps({"pid": dead, "start": "1", "netns": ["xtdead1", "xtdead2", "notours"]}))
    (state_dir / "1.json").write_text(json.dumps({"pid": 1, "start": None, "netns": ["xtalive"]}))
    removed: list[str] = []
    assert registry.reap_dead(removed.append) == ["xtdead1", "xtdead2"]
    assert removed == ["xtdead1", "xtdead2"]  # never a name without the prefix
    assert not (state_dir / f"{dead}.json").exists()
    assert (state_dir / "1.json").exists()  # pid 1 is alive: its record stays
