"""Everything under tests/kernel creates real namespaces, links and BPF programs."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/kernel/" in str(item.path):
            item.add_marker(pytest.mark.kernel)
