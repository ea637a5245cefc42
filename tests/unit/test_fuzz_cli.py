"""Random command lines for xdptest-gen and random TrafficOptions: every one ends in exit 0, 1 or
2 with at most a one-line message, or a ConfigError, never a traceback.

A command line that parses and validates would build a topology and send traffic, so each one
given to ``main`` ends with ``--iface xtnoif0``: an interface that does not exist, looked up only
after the arguments were parsed and validated and the output files checked. The command runs
in a temporary directory and draws file names without a ``/``, so the output check can only
touch files there.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdptest.cli import _options, _parser, main
from xdptest.errors import ConfigError
from xdptest.options import TrafficOptions
from xdptest.packets import VARY_FIELDS, parse_vary

NO_SUCH_IFACE = "xtnoif0"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Values: numbers of every kind in text form, names from the options' own vocabulary, garbage.
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "-0", "1", "-1", "64", "2048", "4096", "3001", "65535", "65536",
                     "0x10", "1e3", "1.5", "nan", "inf", "-inf", "1_000", " 7 ", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
words = st.sampled_from(["afxdp", "live", "auto", "native", "generic", "copy", "-", "lo", ".", "..",
                         "udp.sport=1000-1999", "udp.sport=9-1", "size=64-100:random", "ip.src=10.0.0.1-10.0.0.9",
                         "ipv6.dst=::1-::9", "eth.src=02:00:00:00:00:01-02:00:00:00:00:09", "bogus=1-2",
                         "Ether()/IP()/UDP()", "Ether()/IP(", "x.pcap", "r.json", "--", "-h"])
# Anything but a "/" (file names stay in the temporary directory) or a NUL (no command line holds
# one); surrogates stand for undecodable bytes, as Python passes them in sys.argv.
garbage = st.text(st.characters(blacklist_characters="/\x00"), max_size=20)
values = st.one_of(numbers, words, garbage)


def _fitting(action: argparse.Action) -> st.SearchStrategy[str]:
    """Values an option takes, so that many command lines get past parsing and validation."""
    if action.choices:
        return st.sampled_from([str(c) for c in action.choices])
    if action.type is int:
        return st.one_of(st.integers(-2, 5000), st.sampled_from([64, 128, 2048, 4096, 8192])).map(str)
    if action.type is float:
        return st.one_of(st.floats(-1, 1e6), st.sampled_from([0.001, 1.0, 1e9])).map(repr)
    return st.one_of(words, st.sampled_from(["r.json", "rx.pcap", "tx.pcapng", "x.pcap"]))


def _option_table() -> dict[str, st.SearchStrategy[str] | None]:
    """Each long option of the real parser and the values it is given (None: a flag)."""
    table: dict[str, st.SearchStrategy[str] | None] = {}
    for action in _parser()._actions:
        for name in action.option_strings:
            if name.startswith("--") and name != "--iface":  # --iface comes last, always the same
                table[name] = None if action.nargs == 0 else st.one_of(_fitting(action), values)
    return table


OPTIONS = _option_table()
tokens = st.one_of(st.sampled_from(sorted(OPTIONS)), values)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        option = draw(st.sampled_from(sorted(OPTIONS)))
        takes = OPTIONS[option]
        if takes is None or draw(st.integers(0, 9)) == 0:
            argv.append(option)  # a flag, or an option missing its value
        elif draw(st.booleans()):
            argv += [option, draw(takes)]
        else:
            argv.append(f"{option}={draw(takes)}")
        if draw(st.integers(0, 5)) == 0:
            argv.append(draw(tokens))  # a stray token
    return [*argv, "--iface", NO_SUCH_IFACE]


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, --version (0) or bad usage (2)
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@SETTINGS
@given(argv=command_lines())
def test_any_command_line_exits_0_1_or_2_without_a_traceback(in_tmp: Path, argv: list[str]) -> None:
    code, out, err = _run_main(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if code == 2:  # one line saying what to fix (newlines it echoes from the arguments aside)
        assert err.startswith("xdptest-gen: ") and err.endswith("\n"), (argv, err)
        assert err.count("\n") <= 1 + sum(a.count("\n") for a in argv), (argv, err)
    if code == 0:  # only --help or --version stop with 0 before the interface is looked up
        assert {"-h", "--help", "--version"} & {a.split("=")[0] for a in argv}, (argv, out, err)
    assert sorted(p.name for p in in_tmp.iterdir()) == [], (argv, "an output file was left")


@SETTINGS
@given(argv=command_lines())
def test_parsed_arguments_give_options_or_a_config_error(argv: list[str]) -> None:
    """What parses becomes TrafficOptions or a ConfigError with one line; nothing else."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2)
            return
    try:
        options = _options(args)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc), argv
        return
    assert isinstance(options, TrafficOptions)
    assert options.queues == args.queues and options.frame_size == args.frame_size


def test_named_iface_that_does_not_exist_stops_after_validation(in_tmp: Path) -> None:
    """The stop the fuzzing relies on: validation first, then the interface lookup, exit 2."""
    assert _run_main(["--ring-size", "1000", "--iface", NO_SUCH_IFACE])[0] == 2
    code, out, err = _run_main(["--count", "10", "--json", "r.json", "--iface", NO_SUCH_IFACE])
    assert code == 2 and out == ""
    assert f"no interface {NO_SUCH_IFACE!r}" in err and len(err.strip().splitlines()) == 1
    assert not (in_tmp / "r.json").exists()


@pytest.mark.parametrize("argv", [["--count=--"], ["--json=--"], ["--vary=--"], ["--rate=--", "--count", "5"],
                                  ["--vary", "size=64-99", "--packet=--"]])
def test_double_dash_as_a_value_is_bad_usage(in_tmp: Path, argv: list[str]) -> None:
    """``--count=--``: Python before 3.12 parses it as an empty list, which must not get further."""
    code, _, err = _run_main([*argv, "--iface", NO_SUCH_IFACE])
    assert code == 2 and "expected one argument" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("netns", [".", "..", "xtnoif-ns"])
def test_a_netns_that_is_not_a_namespace_exits_2(in_tmp: Path, netns: str) -> None:
    """``--netns .`` or ``..`` name the directory of the namespaces, not a namespace."""
    code, _, err = _run_main(["--netns", netns, "--iface", NO_SUCH_IFACE])
    assert code == 2, err
    assert f"network namespace {netns!r} does not exist" in err and "Traceback" not in err


# --- TrafficOptions with random keyword arguments ------------------------------------------------

FIELDS = {f.name: f for f in dataclasses.fields(TrafficOptions) if f.name != "extra"}
ints = st.one_of(st.integers(-5, 70_000), st.sampled_from([0, 1, 2, 64, 128, 2048, 4096, 3001, 1 << 20,
                                                           -(2**63), 2**64, 2**100]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), ints)
optional_text = st.one_of(st.none(), st.text(max_size=12))
BY_NAME: dict[str, st.SearchStrategy[Any]] = {
    "packet": optional_text, "pcap": optional_text, "write_tx_pcap": optional_text,
    "vary": st.lists(st.text(max_size=12), max_size=3).map(tuple),
    "mode": st.sampled_from(["auto", "copy", "zerocopy", "bogus"]),
    "attach_mode": st.sampled_from(["native", "generic", "bogus"]),
    "engine": st.sampled_from(["afxdp", "live", "auto", "bogus", ""]),
    "unaligned": st.booleans(), "need_wakeup": st.booleans(), "replay_timing": st.booleans(),
    "duration": st.one_of(st.none(), floats), "rate": st.one_of(st.none(), floats),
    "speedup": floats, "allow_loss": floats,
}


def _strategy(name: str) -> st.SearchStrategy[Any]:
    if name in BY_NAME:
        return BY_NAME[name]
    optional = "None" in str(FIELDS[name].type)
    return st.one_of(st.none(), ints) if optional else ints


@SETTINGS
@given(kwargs=st.fixed_dictionaries({}, optional={name: _strategy(name) for name in FIELDS}))
def test_traffic_options_construct_or_raise_config_error(kwargs: dict[str, Any]) -> None:
    """Values of each field's type (and out of range): the options are built, or a ConfigError
    with one line says why; never TypeError, ZeroDivisionError or another accident."""
    try:
        options = TrafficOptions(**kwargs)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # What was accepted is what the validation promises.
    assert 1 <= options.queues <= 64 and options.ring_size & (options.ring_size - 1) == 0
    assert options.frames >= 2 * options.batch and 1 <= options.batch <= options.ring_size
    for name in ("duration", "rate"):
        value = getattr(options, name)
        assert value is None or value > 0
    assert options.speedup > 0 and 0 <= options.allow_loss <= 100
    assert not (isinstance(options.rate, float) and math.isnan(options.rate))


@SETTINGS
@given(spec=st.one_of(st.text(max_size=40),
                      st.builds(lambda f, lo, hi, tail: f"{f}={lo}-{hi}{tail}", st.sampled_from(VARY_FIELDS),
                                values, values, st.sampled_from(["", ":random", ":seq", ":x"]))))
def test_any_vary_spec_parses_or_raises_config_error(spec: str) -> None:
    """``--vary`` values are parsed before anything is sent: a Vary, or a ConfigError."""
    try:
        vary = parse_vary(spec)
    except ConfigError as exc:
        assert str(exc)
        return
    assert vary.field in VARY_FIELDS and vary.count >= 1
