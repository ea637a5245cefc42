"""How xdptest-gen's arguments become TrafficOptions (no root, no sockets)."""

from __future__ import annotations

import pytest

from xdptest.cli import DEFAULT_WINDOW, _options, _parser


def options(*argv: str):
    return _options(_parser().parse_args(list(argv)))


def test_closed_loop_is_the_default() -> None:
    assert options().window == DEFAULT_WINDOW == 4096


@pytest.mark.parametrize(("argv", "window"), [(("--window", "0"), None), (("--window", "512"), 512),
                                              (("--engine", "live"), None),
                                              (("--engine", "auto"), DEFAULT_WINDOW)])
def test_window_choices(argv: tuple[str, ...], window: int | None) -> None:
    assert options(*argv).window == window
