"""One exception tree for the whole kit.

Every class derives from :class:`XdpTestError` and also from the built-in exception that matches
its meaning, so ``except PermissionError`` and ``except XdpTestError`` both work. Messages say what
was wrong and how to fix it.
"""

from __future__ import annotations

import errno as _errno


class XdpTestError(Exception):
    """Base of every error raised by xdptest."""


class PermissionDeniedError(XdpTestError, PermissionError):
    """The process lacks a capability the operation needs (the message names it)."""


class NotSupportedError(XdpTestError, OSError):
    """The kernel, device or machine lacks a feature.

    ``feature`` names it; ``since`` names the kernel release that brought it, when known.
    """

    def __init__(self, feature: str, reason: str, since: str | None = None) -> None:
        self.feature = feature
        self.since = since
        text = f"{feature} is not supported: {reason}"
        if since:
            text += f" (it needs Linux {since} or newer)"
        super().__init__(_errno.EOPNOTSUPP, text)

    def __str__(self) -> str:
        return str(self.strerror)


class ToolchainError(XdpTestError, FileNotFoundError):
    """clang, a header or another build tool is missing or failed (the message names the package)."""


class CompileError(XdpTestError, RuntimeError):
    """clang rejected a BPF C source; ``output`` holds its diagnostics."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class ConfigError(XdpTestError, ValueError):
    """A bad argument or configuration value (the message says which and what is accepted)."""


class InterfaceNotFoundError(XdpTestError, LookupError):
    """No interface of that name or index exists in the namespace named in the message."""


class NamespaceError(XdpTestError, OSError):
    """A network namespace could not be created, entered or removed."""


class NetlinkError(XdpTestError, OSError):
    """A netlink request failed; ``errno`` holds the kernel's error code."""


class BpfObjectError(XdpTestError, ValueError):
    """A file is not a usable BPF ELF object (the message names the file)."""


class ProgramNotFoundError(XdpTestError, LookupError):
    """The object holds no program of that name, or no XDP program (the message lists them)."""


class MapNotFoundError(XdpTestError, LookupError):
    """The object holds no map of that name (the message lists the maps)."""


class MapError(XdpTestError, OSError):
    """A map operation failed (wrong key size, full map, ...)."""


class VerifierError(XdpTestError, OSError):
    """The kernel's verifier rejected a program; ``log`` holds the verifier's log."""

    def __init__(self, err: int, message: str, log: str) -> None:
        super().__init__(err, message)
        self.log = log

    def __str__(self) -> str:
        tail = "\n".join(self.log.strip().splitlines()[-20:])
        return f"{self.strerror}\nverifier log (last lines):\n{tail}" if tail else str(self.strerror)


class AttachError(XdpTestError, OSError):
    """An XDP program could not be attached to or detached from an interface."""


class ClosedError(XdpTestError, ValueError):
    """An object was used after ``close()``."""


class NativeError(XdpTestError, OSError):
    """A C call failed with an errno that the caller did not expect (should not happen)."""


class RingSizeError(ConfigError):
    """A ring size that the kernel will not accept (sizes are powers of two)."""


class UmemError(XdpTestError, OSError):
    """A UMEM could not be allocated or registered."""


class BindError(XdpTestError, OSError):
    """An AF_XDP socket could not be bound; the message says the likely cause."""
