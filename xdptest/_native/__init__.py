"""The private tier over the compiled part (``cnative/``, built by cffi as ``xdptest._native._ffi``).

Only this package touches ``ffi`` and ``lib``: :mod:`.bpf` (libbpf), :mod:`.xsk` (UMEM, rings,
the TX/RX loops) and :mod:`.gen` (generator and verifier) turn C pointers and structs into
``bytes``, ``int`` and small dataclasses, and negative errno returns into ``OSError`` subclasses
through :func:`errno_error`. Everything above goes through those typed faces.

Importing it checks, once, that the compiled module matches this code (a stale build after a
``git pull`` is named as such instead of misbehaving).
"""

from __future__ import annotations

import errno
import os

from xdptest.errors import NativeError, ToolchainError

try:
    from xdptest._native._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ToolchainError(
        f"the compiled part of xdptest is missing ({exc}); reinstall with `pip install .` "
        "after `apt-get install clang libbpf-dev`"
    ) from exc

# The C side's ABI numbers (XT_*_ABI in cnative/xt_*.h) this Python code was written against.
EXPECTED_ABI = {"bpf": (lib.xt_native_abi, 2), "xsk": (lib.xt_xsk_abi, 5), "stamp": (lib.xt_stamp_abi, 3)}


def _check_abi() -> None:
    stale = [f"{part} {get()} (expected {want})" for part, (get, want) in EXPECTED_ABI.items() if get() != want]
    if stale:  # pragma: no cover - a stale build
        raise ToolchainError(f"xdptest's compiled part is a stale build (ABI {', '.join(stale)}): "
                             "rebuild it with `pip install -e .` (or `pip install .`)")


_check_abi()


def errno_error(ret: int, what: str, cls: type[OSError] = NativeError) -> OSError:
    """The exception for a C call that returned ``ret`` (a negative errno): ``cls(code, message)``."""
    code = -ret
    return cls(code, f"{what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})")


def check(ret: int, what: str, cls: type[OSError] = NativeError) -> int:
    """``ret`` when it is not negative; otherwise raise :func:`errno_error`."""
    if ret < 0:
        raise errno_error(ret, what, cls)
    return ret


__all__ = ["check", "errno_error", "ffi", "lib"]
