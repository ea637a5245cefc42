"""Teardown that runs every step: one failing step never skips the ones after it."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def run_all(steps: Iterable[Callable[[], None]]) -> None:
    """Run each step in order; when any failed, re-raise the first failure once all have run.

    ``BaseException`` is caught too, so a Ctrl-C during one step still lets the others release
    what they hold before it propagates.
    """
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first
