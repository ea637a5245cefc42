"""The kernel matrix: ``pytest --xdptest-kernel A,B,...`` runs every selected test on every kernel.

Each kernel becomes one pytest-xdist worker whose Python runs inside a guest booting that kernel:
an ordinary execnet popen gateway whose ``python`` is ``xdptest-vm --stdio --kernel K -- PYTHON``
(the guest's command talks to the gateway over a virtio serial port, see :mod:`xdptest.vm.boot`).
xdist's ``each`` distribution sends every test to every worker, so xdist does the scheduling,
the reports travel as usual and ``-x``, ``--junitxml`` and the terminal work as in any xdist run.
The same gateway reaches another machine with xdist's own ``--tx ssh=HOST//python=xdptest-vm
--stdio --kernel K -- python3`` (the kit and the tests installed there at the same path).

On the controller each report is labelled with its kernel: its node id gets ``@KERNEL`` (so the
terminal, the failure summary and junit XML name the kernel) and a ``kernel`` property. The
terminal summary ends with one line per kernel; ``--xdptest-matrix-json FILE`` writes the same as
JSON with every test's outcome per kernel. A guest that goes down, or a kernel on which not every
collected test ran, fails the session.

The guests run in parallel (xdist starts every worker at once and waits for all collections before
it schedules): under emulation the host's CPUs are split between them.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xdptest.errors import XdpTestError

__all__ = ["KernelMatrix", "configure_worker", "kernel_names", "start_matrix"]

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def kernel_names(value: str) -> list[str]:
    """The kernels of ``--xdptest-kernel``: one, or several separated by commas."""
    return [k.strip() for k in value.split(",") if k.strip()]


@dataclass
class KernelColumn:
    """What one kernel's worker did."""

    label: str
    kernel: str  # as given: a name or an image path
    release: str = ""
    collected: int | None = None
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> outcome
    down: str | None = None  # why the guest went down early
    python: str = ""  # the gateway's python: the xdptest-vm command that boots this kernel

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def problems(self) -> list[str]:
        out = []
        if self.down:
            out.append(f"guest went down: {self.down}")
        if self.collected is None:
            out.append("collected nothing")
        elif len(self.outcomes) < self.collected:
            out.append(f"{self.collected - len(self.outcomes)} of {self.collected} tests did not run")
        return out


class KernelMatrix:
    """The controller's plugin: labels reports by kernel, sums them up per kernel."""

    def __init__(self, config: pytest.Config, columns: dict[str, KernelColumn], json_path: str | None) -> None:
        self.config = config
        self.columns = columns
        self.json_path = json_path
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def _column(self, node: Any) -> KernelColumn | None:
        """The kernel of a worker: by its gateway's command, which a replacement for a crashed
        worker shares (execnet gives the replacement another id)."""
        spec = getattr(getattr(node, "gateway", None), "spec", None)
        python = getattr(spec, "python", None)
        return next((c for c in self.columns.values() if c.python == python), None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        column = self._column(getattr(report, "node", None))
        if column is None or report.nodeid.endswith(f"@{column.label}"):
            return
        nodeid = report.nodeid
        report.nodeid = f"{nodeid}@{column.label}"
        report.user_properties.append(("kernel", column.label))
        category = self.config.hook.pytest_report_teststatus(report=report, config=self.config)[0]
        if category in OUTCOMES:
            previous = column.outcomes.get(nodeid)
            # a test that passed its call but failed its teardown counts as an error
            column.outcomes[nodeid] = "error" if previous == "passed" and category == "error" else (
                previous if previous in ("failed", "error") else category)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        column = self._column(node)
        if column is not None:
            column.collected = len(ids)

    def pytest_runtest_logstart(self) -> None:
        """The terminal's progress counts every test once per kernel (xdist counts one worker's)."""
        collected = [c.collected for c in self.columns.values()]
        if self.session is not None and all(n is not None for n in collected):
            self.session.testscollected = sum(n or 0 for n in collected)

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        column = self._column(node)
        if column is None:
            return
        output = getattr(node, "workeroutput", None) or {}
        column.release = str(output.get("xdptest_release", column.release))
        if error and not column.down:
            column.down = str(error).strip().splitlines()[-1] if str(error).strip() else "no reason given"

    def summary_lines(self) -> list[str]:
        lines = []
        for column in self.columns.values():
            counts = column.counts()
            parts = [f"{counts[k]} {k}" for k in OUTCOMES if counts[k] or k in ("passed", "failed")]
            release = f" ({column.release})" if column.release else ""
            problems = column.problems()
            lines.append(f"kernel {column.label}{release}: {', '.join(parts)}"
                         + (f"; {'; '.join(problems)}" if problems else ""))
        return lines

    def failed(self) -> bool:
        return any(column.problems() for column in self.columns.values())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("xdptest kernels")
        for line in self.summary_lines():
            terminalreporter.line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.failed() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.json_path:
            document = {
                "kernels": [{"label": c.label, "kernel": c.kernel, "release": c.release, "collected": c.collected,
                             "counts": dict(c.counts()), "problems": c.problems()} for c in self.columns.values()],
                "tests": [{"nodeid": nodeid, "kernel": c.label, "outcome": outcome}
                          for c in self.columns.values() for nodeid, outcome in sorted(c.outcomes.items())],
                "exitstatus": int(session.exitstatus),
            }
            Path(self.json_path).write_text(json.dumps(document, indent=1) + "\n")


def _labels(kernels: list[str], releases: list[str]) -> list[str]:
    """Worker ids: a kernel's name, or ``kernel-RELEASE`` for an image path (numbered if repeated)."""
    labels: list[str] = []
    for kernel, release in zip(kernels, releases, strict=True):
        label = kernel if "/" not in kernel else f"kernel-{release}"
        base, n = label, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label)
    return labels


def start_matrix(config: pytest.Config, kernels: list[str], json_path: str | None) -> None:
    """Make this session an xdist run with one guest worker per kernel (before xdist configures)."""
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("--xdptest-kernel with several kernels needs pytest-xdist: pip install pytest-xdist")
    if config.getoption("usepdb", False):
        raise pytest.UsageError("--pdb cannot follow tests into several guests: give one kernel")
    from xdptest.vm.boot import choose_accel
    from xdptest.vm.hostpkgs import GUEST_PACKAGES, ensure_host_packages
    from xdptest.vm.kernels import KernelSpec, prepare

    try:
        ensure_host_packages("booting guests", _stderr_line, GUEST_PACKAGES)
        specs = [KernelSpec.parse(k) for k in kernels]
        prepared = [prepare(s, refresh=bool(os.environ.get("XDPTEST_VM_REFRESH")), log=_stderr_line) for s in specs]
        accels = [choose_accel(p) for p in prepared]  # each guest says which it got
    except (XdpTestError, OSError) as exc:
        raise pytest.UsageError(f"--xdptest-kernel {','.join(kernels)}: {exc}") from None
    labels = _labels([s.name for s in specs], [p.release for p in prepared])
    timeout = os.environ.get("XDPTEST_VM_TIMEOUT", "3600")
    extra: list[str] = []
    artifacts = config.getoption("xdptest_artifacts", None) or config.getini("xdptest_artifacts")
    if artifacts:
        extra += ["--rw", os.path.join(str(config.invocation_params.dir), str(artifacts))]
    tx, pythons = [], []
    for spec, label, accel in zip(specs, labels, accels, strict=True):
        # Under emulation every guest is CPU-bound: share the host's CPUs between them.
        cpus = 2 if accel == "kvm" else max(1, min(2, (os.cpu_count() or 2) // len(specs)))
        python = shlex.join([sys.executable, "-m", "xdptest.vm", "--stdio", "--kernel", spec.name, "--timeout",
                             timeout, "--cpus", str(cpus), *extra, "--", sys.executable])
        if "//" in python:
            raise pytest.UsageError(f"--xdptest-kernel: {python!r} holds '//', which xdist's --tx cannot carry")
        tx.append(f"popen//id={label}//python={python}")
        pythons.append(python)
    config.option.tx = tx
    config.option.dist = "each"
    config.option.numprocesses = None  # the guests are the workers (xdist would turn -n into local ones)
    columns = {label: KernelColumn(label, spec.name, prepared_kernel.release, python=python)
               for label, spec, prepared_kernel, python in zip(labels, specs, prepared, pythons, strict=True)}
    config.pluginmanager.register(KernelMatrix(config, columns, json_path), "xdptest-kernel-matrix")


def configure_worker(config: pytest.Config) -> None:
    """In a guest's xdist worker: report the kernel, and make the base temporary directory's parents
    (the controller names one under its own /tmp, which the guest does not share)."""
    output = getattr(config, "workeroutput", None)
    if output is None:
        return
    output["xdptest_release"] = platform.release()
    basetemp = config.option.basetemp
    if basetemp:
        Path(basetemp).parent.mkdir(parents=True, exist_ok=True)


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
