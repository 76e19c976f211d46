"""The small interface every sandbox backend implements.

A backend probes what the machine offers (:class:`Capabilities`), turns a
level and a filesystem layout into a :class:`SandboxPlan` (what will be
enforced, what is missing), and hands the runner a :class:`ChildSetup` that
applies the plan in the child between fork and exec. Plans are plain data: the
audit record's ``enforcement`` comes from :attr:`SandboxPlan.enforcement`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from statetrace_guard.levels import Level

__all__ = [
    "Capabilities",
    "ChildSetup",
    "FsLayout",
    "Grant",
    "SandboxBackend",
    "SandboxPlan",
    "make_private_tmp",
    "remove_private_tmp",
]

GrantKind = Literal["write", "device"]


@dataclass(frozen=True)
class FsLayout:
    """The paths a plan is built from (absolute, resolved).

    Attributes:
        workspace: the workspace root; writable from L1.
        private_tmp: the per-command temporary directory (``TMPDIR``).
        system_tmp: the system temporary directory; writable from L1.
        protected: paths never writable by the program at any level.
        protected_data: paths read-only below L2 (the policy's ``[protect]``
            list, expanded to what exists).
    """

    workspace: str
    private_tmp: str
    system_tmp: str
    protected: tuple[str, ...] = ()
    protected_data: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """One write permission beyond read-everywhere.

    ``write``: create, modify, delete and rename anything beneath ``path``.
    ``device``: open the device file or directory for writing and ioctl.
    """

    path: str
    kind: GrantKind


@dataclass(frozen=True)
class Capabilities:
    """What this machine can enforce, as probed once per process."""

    platform: str
    landlock_abi: int = 0
    netns: bool = False
    userns: bool = False
    root: bool = False
    mountns: bool = False
    cgroup_v2: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready view (``guard doctor --json``)."""
        return {
            "platform": self.platform,
            "landlock_abi": self.landlock_abi,
            "network_namespaces": self.netns,
            "unprivileged_user_namespaces": self.userns,
            "mount_namespaces": self.mountns,
            "root": self.root,
            "cgroup_v2": self.cgroup_v2,
        }


@dataclass(frozen=True, eq=False)
class SandboxPlan:
    """What a backend will enforce for one command.

    Attributes:
        level: the autonomy level the plan is for.
        network_open: whether the program may use the network.
        enforcement: ``{"network": "netns"|"landlock"|"none",
            "filesystem": "landlock-abi-N"|"none"}`` for the record; network
            is ``"open"`` when the level and opt-in allow it.
        missing: what the level wanted but this machine lacks.
        grants: writable paths (everything is readable).
        readonly: protected paths inside granted trees, made read-only by
            a bind mount in a private mount namespace.
        pinned: directories between a grant and a protected path, bound over
            themselves so that they cannot be renamed or removed.
        backend: the name of the backend that made the plan.
        details: backend specifics (namespace mode, protection method).
    """

    level: Level
    network_open: bool
    enforcement: dict[str, str]
    missing: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    readonly: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    backend: str = "none"
    details: dict[str, object] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        """Return the JSON-ready view stored with ``command.started``."""
        return {
            "enforcement": dict(self.enforcement),
            "missing": list(self.missing),
            "backend": self.backend,
            "writable": [g.path for g in self.grants if g.kind != "device"],
            "readonly": list(self.readonly),
        }


class ChildSetup(Protocol):
    """Applies a plan in the forked child; raises on any failure.

    Built in the parent before fork (so the child does little), called once
    in the child before exec, then closed in the parent after fork.
    """

    def __call__(self, cwd: str) -> None:
        """Restrict the calling (child) process and enter ``cwd``.

        The working directory is entered after the new file view exists, so
        that it is resolved in that view (never a directory of the old one).
        """

    def close(self) -> None:
        """Release what the parent prepared (file descriptors)."""


class SandboxBackend(Protocol):
    """A platform's enforcement: probe, plan, apply."""

    name: str

    def probe(self) -> Capabilities:
        """Return what the machine offers (cached per process)."""
        ...

    def plan(self, level: Level, network_open: bool, layout: FsLayout) -> SandboxPlan:
        """Decide what will be enforced for ``level`` on this machine."""
        ...

    def keep_prepared(self, plan: SandboxPlan) -> None:
        """Prepare ``plan`` now and keep it for later ``child_setup`` calls.

        For a process that forks a child per command (the resident helper):
        what it prepares before forking, every later child finds ready.
        """
        ...

    def child_setup(
        self, plan: SandboxPlan, output_fds: tuple[int, ...] = (1, 2)
    ) -> ChildSetup:
        """Prepare the plan; the result is called in the child before exec.

        ``output_fds`` are the descriptors here that become the program's
        stdout and stderr: a file it may reopen (``> /dev/stdout``).

        Raises:
            SandboxUnavailable: the plan cannot be prepared.
        """
        ...


def make_private_tmp(parent: str) -> str:
    """Create the per-command private temporary directory (mode 0700).

    Cheaper than :mod:`tempfile` on the hot path; the caller points
    ``TMPDIR`` at it and removes it with :func:`remove_private_tmp`.

    Args:
        parent: the system temporary directory to create it in.

    Returns:
        The new directory's absolute path.
    """
    path = os.path.join(parent, f"guard-{os.getpid()}-{os.urandom(6).hex()}")  # noqa: PTH118
    os.mkdir(path, 0o700)  # noqa: PTH102 - no pathlib on the hot path
    return path


def remove_private_tmp(path: str) -> None:
    """Remove the private temporary directory and whatever the program left."""
    try:
        os.rmdir(path)  # noqa: PTH106 - the fast, usual case: it is empty
    except FileNotFoundError:
        return
    except OSError:
        import shutil  # noqa: PLC0415 - only when the program left files

        shutil.rmtree(path, ignore_errors=True)
