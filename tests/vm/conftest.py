"""tests/vm: netdevsim and guest tests.

They create real netdevsim devices, so they need a kernel with netdevsim: the Debian kernels that
``--xdptest-kernel`` boots (the kit builds netdevsim for them). On a host without netdevsim they
skip with the reason. Inside a guest whose kernel the kit prepared with netdevsim
(``XDPTEST_GUEST_NETDEVSIM=1``), a missing netdevsim fails the test instead: it is a regression.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Host-side tests that boot guests themselves are not collected inside a guest.
HOST_ONLY = ["test_guest_status.py", "test_kernel_matrix.py", "test_kernel_by_path.py"]
collect_ignore = HOST_ONLY if os.environ.get("XDPTEST_IN_GUEST") else []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/vm/" in str(item.path):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def _netdevsim_expected(request: pytest.FixtureRequest) -> None:
    if "netdevsim" not in request.fixturenames or not os.environ.get("XDPTEST_GUEST_NETDEVSIM"):
        return
    from xdptest.netdevsim import netdevsim_unavailable_reason

    reason = netdevsim_unavailable_reason()
    if reason:
        pytest.fail(f"this guest's kernel was prepared with netdevsim, but: {reason}", pytrace=False)


def skip_unless_host_may_boot_guests(what: str) -> None:
    """The heavier host tests that boot guests run where scripts/test-kernels.sh asks for them."""
    if os.environ.get("XDPTEST_IN_GUEST"):
        pytest.skip(f"runs on the host: it boots {what}")
    if not os.environ.get("XDPTEST_GUEST_TESTS"):
        pytest.skip(f"boots {what}: runs in scripts/test-kernels.sh (or with XDPTEST_GUEST_TESTS=1)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 missing (apt-get install qemu-system-x86)")
