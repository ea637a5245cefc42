"""Guests booting stock kernels: which kernels (:mod:`.kernels`), how they boot (:mod:`.boot`),
and running a command in one (:mod:`.run`, the ``xdptest-vm`` command)."""

from xdptest.vm.boot import EXIT_GUEST_DIED, EXIT_INTERRUPTED, EXIT_TIMEOUT
from xdptest.vm.run import DEFAULT_TIMEOUT, guest_env, main, run_in_guest

__all__ = ["DEFAULT_TIMEOUT", "EXIT_GUEST_DIED", "EXIT_INTERRUPTED", "EXIT_TIMEOUT", "guest_env", "main",
           "run_in_guest"]
