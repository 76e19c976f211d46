"""Kernel enforcement behind one small interface (see :mod:`.base`).

:func:`select_backend` picks the platform's backend: Linux with Landlock gets
:class:`~.linux.LinuxBackend`; every other machine gets
:class:`~.unsafe_none.UnsafeNoSandbox`, which enforces nothing and says so.
The probe runs once per process.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statetrace_guard.sandbox.base import SandboxBackend

__all__ = ["select_backend"]


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
