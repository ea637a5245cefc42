"""Reports people read: a run's page opened in a real headless browser, its lines parsed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

HISTOGRAM_BLUE = (0x3B, 0x6E, 0xA5)  # the latency bars' colour


def gen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xdptest.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _screenshot(page: Path, out: Path) -> None:
    """The page as chromium renders it; the browser runs in its own session and nothing of it stays."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium; scripts/install-deps.sh installs it)")
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1100",
            f"--user-data-dir={out.parent / 'chromium-profile'}", f"--screenshot={out}", page.as_uri()]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=60)
    finally:  # the browser's helpers (zygote, GPU process) are in its session: none may stay
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert out.is_file(), f"chromium wrote no screenshot (exit {proc.returncode})"


def test_interval_plot_and_lines_a_person_and_a_program_can_read(tmp_path: Path) -> None:
    p = gen("--rate", "50000", "--duration", "1.5", "--interval", "0.25", "--plot", "run.html",
            "--json-lines", "run.ndjson", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    records = [json.loads(line) for line in (tmp_path / "run.ndjson").read_text().splitlines()]
    assert [r["type"] for r in records] == ["interval"] * (len(records) - 1) + ["report"]
    page = (tmp_path / "run.html").read_text()
    assert page.count("<svg") == 1 and "latency histogram" in page and "rate over time" in page
    assert f"kernel {os.uname().release}" in page and "window 4096" in page  # the caption
    _screenshot(tmp_path / "run.html", tmp_path / "shot.png")
    from PIL import Image

    with Image.open(tmp_path / "shot.png") as shot:
        raw = shot.convert("RGB").tobytes()
    pixels = [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    non_white = sum(1 for px in pixels if px != (255, 255, 255)) / len(pixels)
    assert non_white > 0.05, f"only {100 * non_white:.1f} % of the page is drawn"
    assert len(set(pixels)) > 100  # text, axes and bars, not a blank or single-colour page
    blue = sum(1 for px in pixels if all(abs(a - b) <= 16 for a, b in zip(px, HISTOGRAM_BLUE, strict=True)))
    assert blue > 300, blue  # the figure itself was rendered: bars, the percentile curve, the rate line


@pytest.mark.parametrize(("name", "magic"), [("run.png", b"\x89PNG"), ("run.svg", b"<?xml")])
def test_plot_as_an_image(tmp_path: Path, name: str, magic: bytes) -> None:
    p = gen("--count", "20000", "--plot", name, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_plot_refuses_what_it_cannot_draw_before_sending(tmp_path: Path) -> None:
    p = gen("--count", "10", "--plot", "run.pdf", cwd=tmp_path)
    assert p.returncode == 2 and "--plot run.pdf: the name must end in .html, .png, .svg" in p.stderr
    code = ("import sys; sys.modules['matplotlib'] = None; from xdptest.cli import main; "
            "sys.exit(main(['--count', '10', '--plot', 'run.png']))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2 and "--plot needs matplotlib: pip install 'xdptest[plot]'" in p.stderr
    assert "sent" not in p.stdout  # nothing ran
