"""Shared test set-up: kernel tests need root; the kit's own plugin provides the fixtures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel test: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def default_stop_signals() -> None:
    """``preexec_fn`` for a child that must meet Ctrl-C, SIGTERM and SIGHUP as a terminal user's
    process does, also when the suite runs under ``nohup`` or in the background (SIGHUP or SIGINT
    then ignored, which children inherit and the kit rightly respects)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
