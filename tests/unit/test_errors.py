"""The exception tree: every error is an XdpTestError and the matching built-in."""

from __future__ import annotations

import errno

import pytest

import xdptest
from xdptest import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.PermissionDeniedError, PermissionError),
        (errors.NotSupportedError, OSError),
        (errors.ToolchainError, FileNotFoundError),
        (errors.ConfigError, ValueError),
        (errors.RingSizeError, ValueError),
        (errors.InterfaceNotFoundError, LookupError),
        (errors.ProgramNotFoundError, LookupError),
        (errors.MapNotFoundError, LookupError),
        (errors.BpfObjectError, ValueError),
        (errors.VerifierError, OSError),
        (errors.AttachError, OSError),
        (errors.ClosedError, ValueError),
        (errors.BindError, OSError),
    ],
)
def test_each_error_is_also_the_matching_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, errors.XdpTestError)
    assert issubclass(cls, builtin)


def test_public_names_are_exported_lazily() -> None:
    assert xdptest.VerifierError is errors.VerifierError
    assert "XdpProgram" in xdptest.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = xdptest.Nope  # type: ignore[attr-defined]


def test_not_supported_names_feature_and_kernel() -> None:
    exc = errors.NotSupportedError("busy polling", "SO_PREFER_BUSY_POLL is unknown", since="5.11")
    assert exc.errno == errno.EOPNOTSUPP
    assert exc.feature == "busy polling"
    assert str(exc) == "busy polling is not supported: SO_PREFER_BUSY_POLL is unknown (it needs Linux 5.11 or newer)"


def test_verifier_error_shows_the_end_of_its_log() -> None:
    log = "\n".join(f"line {i}" for i in range(50))
    exc = errors.VerifierError(errno.EACCES, "the verifier rejected x.o", log)
    assert exc.log == log
    text = str(exc)
    assert text.startswith("the verifier rejected x.o")
    assert "line 49" in text and "line 29" not in text
