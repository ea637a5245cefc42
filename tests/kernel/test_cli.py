"""xdptest-gen as a user runs it: exit codes, one-line errors, JSON and pcap output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import default_stop_signals


def gen(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xdptest.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_builtin_topology_verifies_everything(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = gen("--count", "20000", "--window", "4096", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "xdptest-gen: PASS" in p.stdout and "built-in topology, removed afterwards" in p.stdout
    report = json.loads(out.read_text())
    assert (report["sent"], report["received"], report["lost"]) == (20000, 20000, 0)
    assert report["bind_mode"] == "copy" and report["need_wakeup"] is True


@pytest.mark.parametrize(("args", "message"), [
    (["--ring-size", "1000"], "not a power of two"),
    (["--iface", "xtnope0"], "no interface 'xtnope0'"),
    (["--vary", "udp.sport=9-1"], "inverted"),
    (["--packet", "Ether()/IP("], "not a scapy expression"),
    (["--pcap", "/nonexistent/x.pcap"], "cannot read it"),
    (["--size", "70000"], "frames have 1 to 65536 bytes"),
    (["--frame-size", "3000"], "2048 or 4096"),
    (["--bogus"], "unrecognized arguments"),
    (["--rx-iface", "x"], "need --iface"),
])
def test_bad_usage_exits_2_with_one_line(args: list[str], message: str) -> None:
    p = gen(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr


def test_write_pcap_is_readable_by_tcpdump(tmp_path: Path) -> None:
    pcap = tmp_path / "rx.pcap"
    p = gen("--count", "500", "--window", "256", "--write-pcap", str(pcap), "--vary", "udp.dport=100-109")
    assert p.returncode == 0, p.stderr
    out = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True, check=True).stdout
    # what was received, as received: IPv6 neighbour discovery may be in it too, so count the kit's
    assert len([line for line in out.splitlines() if "UDP, length" in line]) == 500
    assert "198.18.0.2.109:" in out


def test_write_pcap_covers_every_queue_with_receive_times(tmp_path: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapNgReader

    pcap = tmp_path / "rx.pcapng"
    p = gen("--count", "4000", "--queues", "2", "--write-pcap", str(pcap), "--pcap-frames", "1000")
    assert p.returncode == 0, p.stderr
    with PcapNgReader(str(pcap)) as reader:
        frames = [f for f in reader if UDP in f]
    queues = {f.sniffed_on.rsplit(" queue ", 1)[1] for f in frames}
    assert queues == {"0 (AF_XDP RX)", "1 (AF_XDP RX)"} and 900 <= len(frames) <= 1000
    times = [float(f.time) for f in frames]
    assert times == sorted(times) and len(set(times)) > 1  # each batch its own receive time
    assert abs(times[0] - time.time()) < 60


def test_starved_receiver_exits_1_and_allow_loss_accepts_it() -> None:
    starve = ["--count", "200000", "--rx-ring-size", "64", "--ring-size", "64", "--frames", "128", "--batch", "32"]
    p = gen(*starve)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "xdptest-gen: FAIL" in p.stdout and "rx_fill_ring_empty_descs" in p.stdout
    assert gen(*starve, "--allow-loss", "100").returncode == 0


def test_existing_interfaces_by_name(veth_pair) -> None:
    pair = veth_pair()
    p = gen("--iface", pair.a.ifname, "--netns", pair.a.netns.name, "--rx-iface", pair.b.ifname,
            "--rx-netns", pair.b.netns.name, "--count", "3000", "--window", "1024")
    assert p.returncode == 0, p.stderr
    assert f"{pair.a} -> {pair.b}" in p.stdout
    tx_only = gen("--iface", pair.a.ifname, "--netns", pair.a.netns.name, "--count", "100",
                  "--packet", f"Ether(dst='{pair.b.mac}')/IP(dst='{pair.b.ipv4}')/UDP(dport=9)")
    assert tx_only.returncode == 0, tx_only.stderr
    assert "transmit only" in tx_only.stdout


def test_engine_live_and_its_refusal() -> None:
    p = gen("--engine", "live", "--count", "20000", "--rate", "200000")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "live frames (kernel)" in p.stdout
    bad = gen("--engine", "live", "--count", "10", "--vary", "size=64-100")
    assert bad.returncode == 2 and "use --engine afxdp or auto" in bad.stderr


def test_without_live_frames_live_exits_2_and_auto_falls_back(monkeypatch, capsys) -> None:
    """Where the live-frames probe fails (kernels before 5.18), as the command meets it."""
    from xdptest import features
    from xdptest.cli import main

    real = features.probe

    def probe(name: str) -> features.FeatureStatus:
        if name == "live_frames":
            return features.FeatureStatus(name, False, "BPF_F_TEST_XDP_LIVE_FRAMES refused: Invalid argument",
                                          "5.18")
        return real(name)

    monkeypatch.setattr(features, "probe", probe)
    assert main(["--engine", "live", "--count", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "live frames are not available" in err and "--engine afxdp" in err
    assert main(["--engine", "auto", "--count", "1000"]) == 0
    out = capsys.readouterr().out
    assert "engine: AF_XDP, chosen by auto because live frames are not available" in out
    assert "AF_XDP sockets" in out


@pytest.mark.parametrize(("option", "path"), [("--json", "/no/such/dir/x.json"), ("--write-pcap", "/proc/x"),
                                              ("--write-tx-pcap", "/no/such/dir/tx.pcapng")])
def test_an_unwritable_output_stops_the_run_before_it_sends(option: str, path: str) -> None:
    started = time.monotonic()
    p = gen("--count", "5000000", option, path, timeout=30)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and f"{option} {path}: cannot write it" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert time.monotonic() - started < 10  # five million frames were never sent


def test_an_unwritten_output_check_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = gen("--count", "100", "--json", str(out), "--iface", "xt-no-such-if")
    assert p.returncode == 2
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_terminated_mid_run_removes_its_topology(tmp_path: Path, signum: signal.Signals) -> None:
    """What timeout, CI cancellation and a closed terminal send cleans up like Ctrl-C."""
    state = tmp_path / "state"
    env = dict(os.environ, XDPTEST_STATE_DIR=str(state))
    proc = subprocess.Popen([sys.executable, "-m", "xdptest.cli", "--duration", "60", "--rate", "2000"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_stop_signals)
    record = state / f"{proc.pid}.json"
    names: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(names) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                names = json.loads(record.read_text())["netns"]
            time.sleep(0.05)
        assert len(names) == 2, "xdptest-gen never built its topology"
        time.sleep(2)  # in the middle of traffic
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
        for name in names:  # the private state dir hides a leak from the kit's reaper
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    assert proc.returncode == 1
    assert f"terminated by {signum.name}; everything it created was removed" in err, err
    assert not set(names) & set(os.listdir("/run/netns"))
    assert not record.exists()


def test_interval_rows_and_json_lines(tmp_path: Path) -> None:
    lines = tmp_path / "run.ndjson"
    p = gen("--rate", "50000", "--duration", "1.0", "--interval", "0.25", "--json-lines", str(lines))
    assert p.returncode == 0, p.stdout + p.stderr
    printed = [ln for ln in p.stdout.splitlines() if ln.startswith("[")]
    records = [json.loads(ln) for ln in lines.read_text().splitlines()]
    rows, (report,) = records[:-1], records[-1:]
    assert report["type"] == "report" and all(r["type"] == "interval" for r in rows)
    assert 3 <= len(rows) <= 6 and len(printed) == len(rows)  # 4 full intervals and the rest, give or take a tick
    assert [r["interval"] for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r["sent"] for r in rows) == report["sent"] and sum(r["received"] for r in rows) == report["received"]
    assert report["intervals"] == [{k: v for k, v in r.items() if k != "type"} for r in rows]
    full = [r for r in rows if r["end_s"] - r["start_s"] > 0.2]
    assert all(30_000 < r["tx_pps"] < 60_000 for r in full), full  # paced at 50 kpps, on a busy machine
    assert all(0 < r["latency_ns"]["p50"] <= r["latency_ns"]["p99"] <= r["latency_ns"]["max"] for r in full)


def test_json_lines_needs_interval(tmp_path: Path) -> None:
    p = gen("--count", "10", "--json-lines", str(tmp_path / "x.ndjson"))
    assert p.returncode == 2 and "give --interval SECONDS" in p.stderr
