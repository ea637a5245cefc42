"""Capability checks, so that a missing privilege is reported before the kernel says EPERM."""

from __future__ import annotations

import os

from xdptest.errors import PermissionDeniedError

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

_NAMES = {
    CAP_NET_ADMIN: "CAP_NET_ADMIN",
    CAP_NET_RAW: "CAP_NET_RAW",
    CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
    CAP_PERFMON: "CAP_PERFMON",
    CAP_BPF: "CAP_BPF",
}


def effective_capabilities() -> int:
    """The CapEff bit mask of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has_capability(cap: int) -> bool:
    mask = effective_capabilities()
    if mask >> cap & 1:
        return True
    # Kernels before 5.8 have no CAP_BPF/CAP_PERFMON: CAP_SYS_ADMIN covers them.
    return cap in (CAP_BPF, CAP_PERFMON) and bool(mask >> CAP_SYS_ADMIN & 1)


def require(*caps: int, action: str) -> None:
    """Raise PermissionDeniedError naming every missing capability and how to get them."""
    missing = [_NAMES.get(c, str(c)) for c in caps if not has_capability(c)]
    if missing:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        raise PermissionDeniedError(
            f"{action} needs {' and '.join(missing)}, which this process ({who}) lacks: "
            "run as root (sudo), or grant them, e.g. `setpriv --ambient-caps "
            f"+{',+'.join(m.lower().removeprefix('cap_') for m in missing)}` "
            "or a container started with --cap-add"
        )
