"""The session's traffic, as the pytest plugin reports it: a line per traffic run in the
terminal summary, and with ``--xdptest-report FILE`` one JSON document with every run's report.

The ``traffic`` fixture records each run in the test's ``user_properties`` (a short line always,
the whole report only with ``--xdptest-report``), so the records travel with the test reports
from pytest-xdist workers and guests to the process that prints and writes them.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import pytest

from xdptest._version import __version__

LINE_KEY = "xdptest_traffic"
REPORT_KEY = "xdptest_traffic_report"


def report_path(config: pytest.Config) -> str | None:
    value = config.getoption("xdptest_report", None) or config.getini("xdptest_report")
    return str(value) if value else None


def record_traffic(request: pytest.FixtureRequest, report: Any) -> None:
    """Attach a traffic run's line (and, when a report file was asked for, its report) to the test."""
    lat = report.latency_ns
    line = (f"sent {report.sent}, received {report.received}, lost {report.lost}, corrupted {report.corrupted}, "
            f"{report.rx_pps / 1e6:.3f} Mpps, p99 {lat['p99'] / 1000:.1f} us, {report.engine} on {report.kernel}")
    request.node.user_properties.append((LINE_KEY, line))
    if report_path(request.config):
        request.node.user_properties.append((REPORT_KEY, report.to_dict()))


class TrafficRecords:
    """Collects the records of finished tests (in the process that reports: the controller)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lines: list[tuple[str, str]] = []
        self.runs: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == LINE_KEY:
                self.lines.append((report.nodeid, str(value)))
            elif key == REPORT_KEY and isinstance(value, dict):
                self.runs.append({"test": report.nodeid, "kernel": value.get("kernel"),
                                  "outcome": report.outcome, "report": value})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.section("xdptest traffic")
        for nodeid, line in self.lines:
            terminalreporter.line(f"{nodeid}: {line}")
        if self.path:
            terminalreporter.line(f"{len(self.runs)} traffic report(s) written to {self.path}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.path:
            return
        document = {"xdptest_version": __version__, "host_kernel": platform.release(),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exitstatus": int(exitstatus),
                    "runs": self.runs}
        Path(self.path).write_text(json.dumps(document, indent=1) + "\n")


def register(config: pytest.Config) -> None:
    """Record traffic in the process that reports (not in an xdist worker, whose reports go to it)."""
    if hasattr(config, "workerinput"):
        return
    config.pluginmanager.register(TrafficRecords(report_path(config)), "xdptest-traffic")
