"""Kernel enforcement behind one small interface (see :mod:`.base`).

:func:`select_backend` picks the platform's backend: Linux with Landlock gets
:class:`~.linux.LinuxBackend`; every other machine gets
:class:`~.unsafe_none.UnsafeNoSandbox`, which enforces nothing and says so.
The probe runs once per process. :func:`containment_available` says whether
this machine's kernel enforces a level's whole envelope.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statetrace_guard.sandbox.base import SandboxBackend

__all__ = ["containment_available", "select_backend"]


@functools.cache
def select_backend() -> SandboxBackend:
    """Return this machine's backend (cached: probed once per process)."""
    if sys.platform.startswith("linux"):
        from statetrace_guard.sandbox.linux import LinuxBackend  # noqa: PLC0415 - lazy

        backend = LinuxBackend()
        caps = backend.probe()
        if caps.landlock_abi >= 1 or caps.netns:
            return backend
    from statetrace_guard.sandbox.unsafe_none import UnsafeNoSandbox  # noqa: PLC0415 - lazy

    return UnsafeNoSandbox()


@functools.cache
def containment_available() -> bool:
    """Tell whether the kernel here applies every layer of the seal.

    Cheap and cached per process: Linux with Landlock, network, mount, PID,
    IPC and UTS namespaces, a seccomp filter for this architecture and
    capabilities dropped down to the bounding set (see
    :func:`statetrace_guard.sandbox.layers.containment_layers`). Code the
    classifier cannot name may run "contained" only where this is True.
    """
    if not sys.platform.startswith("linux"):
        return False
    backend = select_backend()
    if backend.name != "linux":
        return False
    from statetrace_guard.sandbox.layers import containment_layers  # noqa: PLC0415

    return containment_layers(backend.probe())
