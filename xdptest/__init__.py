"""xdptest: a test harness and traffic generator for XDP programs and AF_XDP applications.

Importing the package is cheap: public names are loaded on first use, so the pytest plugin stays
inert until a fixture asks for something.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xdptest._version import __version__

_EXPORTS = {
    "Netns": "xdptest.netns",
    "VethPair": "xdptest.netns",
    "Endpoint": "xdptest.netns",
    "XdpProgram": "xdptest.bpf",
    "XdpAction": "xdptest.bpf",
    "XdpMap": "xdptest.maps",
    "TestRunResult": "xdptest.bpf",
    "Attachment": "xdptest.bpf",
    "builtin_program_path": "xdptest.bpf",
    "BUILTIN_PROGRAMS": "xdptest.bpf",
    "Umem": "xdptest.umem",
    "XskSocket": "xdptest.xsk",
    "XskLoop": "xdptest.xsk",
    "RingState": "xdptest.xsk",
    "TrafficReport": "xdptest.report",
    "TrafficOptions": "xdptest.options",
    "TrafficRun": "xdptest.traffic",
    "run_traffic": "xdptest.traffic",
}
_ERRORS = (
    "XdpTestError",
    "PermissionDeniedError",
    "NotSupportedError",
    "ToolchainError",
    "CompileError",
    "ConfigError",
    "InterfaceNotFoundError",
    "NamespaceError",
    "NetlinkError",
    "BpfObjectError",
    "ProgramNotFoundError",
    "MapNotFoundError",
    "MapError",
    "VerifierError",
    "AttachError",
    "ClosedError",
    "RingSizeError",
    "UmemError",
    "BindError",
)
_EXPORTS.update({name: "xdptest.errors" for name in _ERRORS})

__all__ = [
    "BUILTIN_PROGRAMS",
    "AttachError",
    "Attachment",
    "BindError",
    "BpfObjectError",
    "ClosedError",
    "CompileError",
    "ConfigError",
    "Endpoint",
    "InterfaceNotFoundError",
    "MapError",
    "MapNotFoundError",
    "NamespaceError",
    "NetlinkError",
    "Netns",
    "NotSupportedError",
    "PermissionDeniedError",
    "ProgramNotFoundError",
    "RingSizeError",
    "RingState",
    "TestRunResult",
    "ToolchainError",
    "TrafficOptions",
    "TrafficReport",
    "TrafficRun",
    "Umem",
    "UmemError",
    "VerifierError",
    "VethPair",
    "XdpAction",
    "XdpMap",
    "XdpProgram",
    "XdpTestError",
    "XskLoop",
    "XskSocket",
    "__version__",
    "builtin_program_path",
    "run_traffic",
]

if TYPE_CHECKING:
    from xdptest.bpf import (
        BUILTIN_PROGRAMS,
        Attachment,
        TestRunResult,
        XdpAction,
        XdpProgram,
        builtin_program_path,
    )
    from xdptest.errors import (
        AttachError,
        BindError,
        BpfObjectError,
        ClosedError,
        CompileError,
        ConfigError,
        InterfaceNotFoundError,
        MapError,
        MapNotFoundError,
        NamespaceError,
        NetlinkError,
        NotSupportedError,
        PermissionDeniedError,
        ProgramNotFoundError,
        RingSizeError,
        ToolchainError,
        UmemError,
        VerifierError,
        XdpTestError,
    )
    from xdptest.maps import XdpMap
    from xdptest.netns import Endpoint, Netns, VethPair
    from xdptest.options import TrafficOptions
    from xdptest.report import TrafficReport
    from xdptest.traffic import TrafficRun, run_traffic
    from xdptest.xsk import RingState, Umem, XskLoop, XskSocket


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xdptest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
