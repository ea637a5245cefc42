"""How xdptest-gen's arguments become TrafficOptions (no root, no sockets)."""

from __future__ import annotations

import pytest

from xdptest.cli import _options, _parser
from xdptest.errors import ConfigError
from xdptest.options import DEFAULT_WINDOW, TrafficOptions


def options(*argv: str):
    return _options(_parser().parse_args(list(argv)))


def test_closed_loop_is_the_default() -> None:
    assert options().window == DEFAULT_WINDOW == 4096


@pytest.mark.parametrize(("argv", "window"), [(("--window", "0"), 0), (("--window", "512"), 512),
                                              (("--engine", "live"), DEFAULT_WINDOW),
                                              (("--engine", "auto"), DEFAULT_WINDOW)])
def test_window_choices(argv: tuple[str, ...], window: int | None) -> None:
    assert options(*argv).window == window


@pytest.mark.parametrize(("given", "window"), [({}, DEFAULT_WINDOW), ({"window": 0}, 0), ({"window": None}, 0),
                                               ({"window": 512}, 512)])
def test_the_python_api_reads_window_as_the_command_does(given: dict[str, int | None], window: int) -> None:
    """run_traffic(window=0) is open loop, as --window 0 is; the default is closed loop in both."""
    assert TrafficOptions.from_kwargs(count=1, **given).window == window


def test_a_window_smaller_than_a_batch_is_refused_with_the_remedy() -> None:
    with pytest.raises(ConfigError, match="use at least 64, or 0 for open loop"):
        TrafficOptions(window=10)


@pytest.mark.parametrize(("argv", "message"), [
    (("--replay-timing",), "--replay-timing replays a capture's gaps: give --pcap FILE"),
    (("--pcap", "x.pcap", "--replay-timing", "--rate", "100"), "--rate and --replay-timing exclude each other"),
    (("--pcap", "x.pcap", "--replay-timing", "--queues", "2"), "--replay-timing sends one ordered stream"),
    (("--pcap", "x.pcap", "--loop", "0"), "--loop must be at least 1, got 0"),
    (("--pcap", "x.pcap", "--loop", "2", "--count", "5"), "--loop and --count exclude each other"),
    (("--speedup", "0"), "--speedup must be positive"),
])
def test_bad_timing_options_exit_2_with_one_line(argv: tuple[str, ...], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from xdptest.cli import main

    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_replay_or_loop_take_the_count_from_the_capture() -> None:
    assert options("--pcap", "x.pcap", "--replay-timing").count is None
    assert options("--pcap", "x.pcap", "--loop", "3").loop == 3


@pytest.mark.parametrize("kwargs", [{"frame_size": 1000, "unaligned": True}, {"frame_size": 3000},
                                    {"headroom": 3500}, {"headroom": -1}])
def test_options_refuse_what_a_umem_refuses_with_the_same_words(kwargs: dict[str, object]) -> None:
    """One rule for frame and headroom limits: the command refuses before any socket exists what
    the Umem would refuse later, in the same words."""
    from xdptest.xsk import Umem

    with pytest.raises(ConfigError) as by_options:
        TrafficOptions(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as by_umem:
        Umem(**kwargs)  # type: ignore[arg-type]
    assert str(by_options.value).split(" ", 1)[1] == str(by_umem.value).split(" ", 1)[1]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"count": "5"}, "count='5': expected int or None"),
    ({"window": True}, "window=True: expected int"),
    ({"need_wakeup": 1}, "need_wakeup=1: expected bool"),
    ({"pcap": 3}, "pcap=3: expected str or None"),
    ({"rate": [1]}, r"rate=\[1\]: expected float or None"),
])
def test_a_value_of_the_wrong_type_is_a_config_error_naming_the_option(kwargs: dict[str, object],
                                                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrafficOptions(**kwargs)  # type: ignore[arg-type]


def test_an_output_path_with_a_nul_byte_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from xdptest.cli import main

    assert main(["--json", "report\0.json", "--iface", "xtnoif0"]) == 2
    err = capsys.readouterr().err
    assert "cannot write it" in err and len(err.strip().splitlines()) == 1


def test_the_frame_length_rule_is_the_engines() -> None:
    """One rule for frame lengths: what one UMEM frame holds for a receiver (after the kernel's and
    the UMEM's headroom), or with multi-buffer the engine's own limit, the one its C code uses."""
    from xdptest._native.xsk import MAX_FRAME
    from xdptest.limits import max_frame_len

    assert max_frame_len(4096, 0) == 3840 and max_frame_len(2048, 100) == 1692
    assert max_frame_len(4096, 0, multi_buffer=True) == MAX_FRAME == 65536
    with pytest.raises(ConfigError, match="--size 70000: frames have 1 to 65536 bytes"):
        TrafficOptions(size=70000)
    assert TrafficOptions(size=9000).size == 9000  # longer than a UMEM frame: multi-buffer decides later
