"""The pure parts of the kernel matrix: kernel lists, worker labels, the per-kernel summary."""

from __future__ import annotations

import pytest

from xdptest.plugin_matrix import KernelColumn, _labels, kernel_names


@pytest.mark.parametrize(("value", "expected"), [
    ("debian-6.1", ["debian-6.1"]),
    ("debian-5.10,debian-latest", ["debian-5.10", "debian-latest"]),
    (" debian-6.1 , debian-6.12 ,", ["debian-6.1", "debian-6.12"]),
])
def test_kernel_names(value: str, expected: list[str]) -> None:
    assert kernel_names(value) == expected


def test_labels_are_names_or_releases_and_unique() -> None:
    kernels = ["debian-6.1", "/k/a/vmlinuz", "/k/b/vmlinuz"]
    releases = ["6.1.0-1-amd64", "5.10.0-9-amd64", "5.10.0-9-amd64"]
    assert _labels(kernels, releases) == ["debian-6.1", "kernel-5.10.0-9-amd64", "kernel-5.10.0-9-amd64-2"]


def test_a_kernel_that_did_not_run_everything_is_a_problem() -> None:
    column = KernelColumn("debian-5.10", "debian-5.10", "5.10.0-46-amd64", collected=3,
                          outcomes={"t::a": "passed", "t::b": "skipped"})
    assert column.problems() == ["1 of 3 tests did not run"]
    column.outcomes["t::c"] = "failed"
    assert column.problems() == []
    column.down = "worker crashed"
    assert column.problems() == ["guest went down: worker crashed"]
    assert KernelColumn("x", "x").problems() == ["collected nothing"]
