"""The small interface every sandbox backend implements.

A backend probes what the machine offers (:class:`Capabilities`), turns a
level and a filesystem layout into a :class:`SandboxPlan` (what will be
enforced, what is missing), and hands the runner a :class:`ChildSetup` that
applies the plan in the child between fork and exec. Plans are plain data: the
audit record's ``enforcement`` comes from :attr:`SandboxPlan.enforcement`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from statetrace_guard.levels import Level

__all__ = [
    "PRIVATE_TMP_PARENT",
    "Capabilities",
    "ChildSetup",
    "FsLayout",
    "Grant",
    "SandboxBackend",
    "SandboxPlan",
    "Seal",
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
        temp_dirs: every temporary directory writable from L1 (the
            classifier's list, :func:`statetrace_guard.paths.temp_dirs`).
        runtime: guard's own code and interpreter environment, read-only
            below L3 (:func:`statetrace_guard.paths.guard_runtime`).
        protected: paths never writable by the program at any level.
        protected_data: paths read-only below L2 (the policy's ``[protect]``
            list, expanded to what exists).
        hidden: directories no program may even read at any level (guard's
            home: its keys, approvals, other sessions' state), present ones.
    """

    workspace: str
    private_tmp: str
    system_tmp: str
    protected: tuple[str, ...] = ()
    protected_data: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    temp_dirs: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()


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
    pidns: bool = False
    seccomp_arch: str | None = None
    drop_bounding: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready view (``guard doctor --json``)."""
        return {
            "platform": self.platform,
            "landlock_abi": self.landlock_abi,
            "network_namespaces": self.netns,
            "unprivileged_user_namespaces": self.userns,
            "mount_namespaces": self.mountns,
            "pid_ipc_uts_namespaces": self.pidns,
            "seccomp_arch": self.seccomp_arch,
            "root": self.root,
            "cgroup_v2": self.cgroup_v2,
        }


@dataclass(frozen=True)
class Seal:
    """What the program may not do beyond files and network (issue 12).

    Privilege as data: the plan says it, ``guard doctor`` prints it, the
    child applies exactly this and the record carries it.

    Attributes:
        namespaces: namespaces of its own beyond network and mount
            (``pid``, ``ipc``, ``uts``); a PID namespace means an init.
        user_namespace: made inside a new user namespace (not root).
        capabilities: ``none`` (every set empty, bounding set dropped and
            secure bits locked), ``none-bounding-kept`` (the caller held no
            CAP_SETPCAP: nothing to drop it with, nothing in it to gain with
            no_new_privs) or ``kept`` (not applied).
        seccomp: the filter's architecture, or ``none``.
        unix_sockets: ``denied`` (no new Unix socket; connected pairs only)
            or ``allowed``.
    """

    namespaces: tuple[str, ...] = ()
    user_namespace: bool = False
    capabilities: str = "kept"
    seccomp: str = "none"
    unix_sockets: str = "allowed"

    def as_enforcement(self) -> dict[str, str]:
        """The record's view of it (``enforcement`` keys)."""
        return {
            "namespaces": ",".join(self.namespaces) or "none",
            "capabilities": self.capabilities,
            "seccomp": self.seccomp,
            "unix_sockets": self.unix_sockets,
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
        hidden: directories covered by an empty read-only file system in
            the program's mount view (guard's home), at every level.
        tmp_cover: (the directory of every private temporary directory, this
            program's own): covered but for the program's own, or empty.
        backend: the name of the backend that made the plan.
        details: backend specifics (namespace mode, protection method).
        seal: capabilities, namespaces, seccomp and the Unix-socket rule.
    """

    level: Level
    network_open: bool
    enforcement: dict[str, str]
    missing: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    readonly: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    tmp_cover: tuple[str, ...] = ()
    backend: str = "none"
    details: dict[str, object] = field(default_factory=dict)
    seal: Seal = field(default_factory=Seal)

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
    """Applies a plan around the program's start; raises on any failure.

    Built in the parent before fork (so the children do little). With a PID
    namespace, ``enter`` runs in the program's init and ``restrict`` in the
    program; without one, both run in the program, in that order. The runner
    enters the working directory between the two, so that it is resolved in
    the new file view (never a directory of the old one: issue 12 K3).
    Closed in the parent after fork.

    Attributes:
        pid_namespace: ``none``, ``root`` (the supervisor unshares it) or
            ``user`` (a holder makes a user namespace with it).
    """

    pid_namespace: str

    def enter(self) -> None:
        """Enter the namespaces and make the mounts (init, or the program)."""

    def restrict(self) -> None:
        """Landlock, capabilities, seccomp; then check nothing is left."""

    def seal(self) -> None:
        """Capabilities and seccomp now, checked; ``restrict`` adds Landlock.

        (An init forked ahead takes them while it waits for its go: they do
        not depend on the client's descriptors, Landlock's grants may.)
        """

    def add_outputs(self, output_fds: tuple[int, ...]) -> None:
        """Grants for these output descriptors, for a setup built without them.

        (An init forked ahead builds its setup before the client's
        descriptors arrive.) Raises SandboxUnavailable.
        """

    def close(self) -> None:
        """Release what the parent prepared (file descriptors)."""


class SandboxBackend(Protocol):
    """A platform's enforcement: probe, plan, apply."""

    name: str

    def probe(self) -> Capabilities:
        """Return what the machine offers (cached per process)."""
        ...

    def plan(
        self,
        level: Level,
        network_open: bool,
        layout: FsLayout,
        *,
        unix_sockets: bool = False,
    ) -> SandboxPlan:
        """Decide what will be enforced for ``level`` on this machine.

        ``unix_sockets``: the policy lets this level create Unix sockets.
        """
        ...

    def keep_prepared(self, plan: SandboxPlan) -> None:
        """Prepare ``plan`` now and keep it for later ``child_setup`` calls.

        For a process that forks a child per command (the resident helper):
        what it prepares before forking, every later child finds ready.
        """
        ...

    def prepare_rules(self, plan: SandboxPlan) -> object | None:
        """What ``child_setup`` may take for a plan like ``plan``, built ahead.

        For an init forked before its command; None when nothing is worth
        building ahead. Raises SandboxUnavailable.
        """
        ...

    def child_setup(
        self,
        plan: SandboxPlan,
        output_fds: tuple[int, ...] = (1, 2),
        prepared: object | None = None,
    ) -> ChildSetup:
        """Prepare the plan; the result is called in the child before exec.

        ``output_fds`` are the descriptors here that become the program's
        stdout and stderr: a file it may reopen (``> /dev/stdout``).
        ``prepared`` (from ``prepare_rules``) is used when it fits ``plan``,
        and released otherwise.

        Raises:
            SandboxUnavailable: the plan cannot be prepared.
        """
        ...


# Every program's private temporary directory lives in this directory of the
# system one; a program's view covers it (the others' stay out of sight).
PRIVATE_TMP_PARENT = "statetrace-guard-tmp"


def make_private_tmp(parent: str) -> str:
    """Create the per-command private temporary directory (mode 0700).

    Cheaper than :mod:`tempfile` on the hot path; the caller points
    ``TMPDIR`` at it and removes it with :func:`remove_private_tmp`. It is
    made in ``<parent>/statetrace-guard-tmp-<uid>`` (a real directory, not a
    link), which each program's mount view covers but for its own.

    Args:
        parent: the system temporary directory to create it in.

    Returns:
        The new directory's absolute path.
    """
    home = os.path.join(parent, f"{PRIVATE_TMP_PARENT}-{os.getuid()}")  # noqa: PTH118
    try:
        os.mkdir(home, 0o711)  # noqa: PTH102 - no pathlib on the hot path
    except FileExistsError:
        info = os.lstat(home)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            home = parent  # not ours to trust: the old place, uncovered
    path = os.path.join(home, f"guard-{os.getpid()}-{os.urandom(6).hex()}")  # noqa: PTH118
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
