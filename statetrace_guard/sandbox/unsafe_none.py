"""``UnsafeNoSandbox``: the backend for machines with no kernel enforcement.

Used on macOS, Windows and Linux kernels without Landlock. Classification and
the audit trail still work; nothing is enforced at the kernel and every plan
says so (``enforcement`` is ``none``, ``missing`` lists what the level wanted)
and warns.
"""

from __future__ import annotations

import platform
import warnings
from typing import TYPE_CHECKING

from statetrace_guard.sandbox.base import Capabilities, FsLayout, SandboxPlan, Seal

if TYPE_CHECKING:
    from statetrace_guard.levels import Level

__all__ = ["NoopChildSetup", "SandboxWarning", "UnsafeNoSandbox"]


class SandboxWarning(UserWarning):
    """A command runs without the kernel enforcement its level asks for."""


class NoopChildSetup:
    """Does nothing in the child."""

    pid_namespace = "none"

    def enter(self) -> None:
        """Enter nothing."""

    def restrict(self) -> None:
        """Apply nothing."""

    def seal(self) -> None:
        """Take nothing away."""

    def add_outputs(self, output_fds: tuple[int, ...]) -> None:
        """Grant nothing (nothing is restricted)."""
        del output_fds

    def close(self) -> None:
        """Release nothing."""


class UnsafeNoSandbox:
    """No enforcement at all; warns on every plan."""

    name = "unsafe-none"

    def probe(self) -> Capabilities:
        """Report a machine with nothing to offer."""
        return Capabilities(platform=platform.system().lower())

    def plan(
        self,
        level: Level,
        network_open: bool,
        layout: FsLayout,
        *,
        unix_sockets: bool = False,
    ) -> SandboxPlan:
        """Plan nothing, list what is missing, and warn."""
        del layout, unix_sockets  # nothing can be enforced on them
        missing: tuple[str, ...] = ("filesystem", "pid namespace", "seccomp")
        if not network_open:
            missing = ("network", *missing)
        warnings.warn(
            f"no kernel sandbox on this machine: {level.name} is not enforced",
            SandboxWarning,
            stacklevel=2,
        )
        return SandboxPlan(
            level=level,
            network_open=network_open,
            enforcement={
                "network": "open" if network_open else "none",
                "filesystem": "none",
                **Seal().as_enforcement(),
            },
            missing=missing,
            backend=self.name,
        )

    def keep_prepared(self, plan: SandboxPlan) -> None:
        """Nothing to prepare."""
        del plan

    def prepare_rules(self, plan: SandboxPlan) -> None:
        """Nothing to build ahead."""
        del plan

    def child_setup(
        self,
        plan: SandboxPlan,
        output_fds: tuple[int, ...] = (1, 2),
        prepared: object | None = None,
    ) -> NoopChildSetup:
        """Return a setup that applies nothing."""
        del plan, output_fds, prepared
        return NoopChildSetup()
