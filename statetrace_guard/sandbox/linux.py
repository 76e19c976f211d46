"""The Linux backend: a mount plan and Landlock for files, namespaces.

What each level gets (issue 13, section 2):

* every level reads everything; L0 writes only ``/dev/null``, ``/dev/tty``,
  ``/dev/ptmx``, ``/dev/pts`` (a terminal for interactive programs) and the
  per-command private temporary directory;
* L1 and up also write the workspace and the temporary directories the
  classifier treats as such (the system one, ``/tmp``, ``/var/tmp``,
  ``/dev/shm`` for POSIX semaphores: one list), including removing
  and renaming any entry of the workspace root and of ``.git/``;
* the guard's own paths (log subdirectories of every known workspace, home,
  policy file) are never writable, and the protected paths of the policy
  (``[protect]``: ``.git/hooks``, ``.git/config``, the StateTrace data...)
  stay read-only below L2.

Where the machine has mount namespaces (``protect = "mount"``), the program
gets a read-only view of everything with its grants bound read-write on top,
and every protected path inside a grant bound read-only over itself, its
parents pinned (:mod:`statetrace_guard.sandbox.mounts`); Landlock grants the
same roots as a second layer. Nothing is split: the workspace root and
``.git/`` stay fully usable.

NOTE(sandbox): without mount namespaces (``protect = "landlock-split"``)
Landlock alone cannot deny inside an allowed tree, so a writable root that
contains a protected path is *split*: each of its entries is granted on its
own, recursing into the entries that contain a protected path, and the split
directory itself gets nothing: existing entries stay writable, but new
entries directly in it cannot be created, and its entries cannot be deleted
or renamed (no new file at the workspace root, no ``.git/index.lock`` below
L2). Metadata changes outside the grants (``chmod``, ``chown``, ``utime``,
extended attributes) are not covered by Landlock either: ``guard doctor``
says so. Symlinks among the split entries get no grant: a write through one
is judged at its target.
"""

from __future__ import annotations

import fcntl
import os
import stat
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from statetrace_guard.errors import SandboxUnavailable
from statetrace_guard.levels import Level
from statetrace_guard.sandbox import capabilities, landlock, seccomp
from statetrace_guard.sandbox.base import (
    PRIVATE_TMP_PARENT,
    Capabilities,
    FsLayout,
    Grant,
    SandboxPlan,
    Seal,
)
from statetrace_guard.sandbox.mounts import (
    MountPlan,
    PrivateDevices,
    apply_mounts,
    enter_mount_namespace,
    make_private_devices,
    plan_pins,
    private_proc,
    take_reserved_mount_namespace,
)
from statetrace_guard.sandbox.netns import (
    enter_namespaces,
    take_reserved_network_namespace,
    unprivileged_userns_enabled,
)
from statetrace_guard.sandbox.proxy_socket import send_listener, take_proxy_channel
from statetrace_guard.sandbox.session_network import open_session_network

if TYPE_CHECKING:
    from collections.abc import Mapping

    from statetrace_guard.sandbox.landlock import Ruleset

__all__ = [
    "FILE_MODES",
    "GrantPlan",
    "LinuxBackend",
    "LinuxChildSetup",
    "plan_grants",
    "plan_seal",
    "probe_linux",
    "protected_paths",
]

_L0_DEVICES = ("/dev/null", "/dev/tty", "/dev/ptmx", "/dev/pts")

# What each way of protecting files gives, and costs (guard doctor, and the
# warning `guard run` prints where mounts are missing).
FILE_MODES = {
    "mount": "a private mount view: everything read-only (metadata too), the "
    "level's grants bound read-write on top, each protected path bound "
    "read-only over itself and the directories above it pinned, guard's home "
    "covered by an empty read-only file system (unreadable at every level); "
    "a fresh /dev (null, zero, full, random, urandom, tty from the "
    "host, the program's own /dev/pts and /dev/shm)",
    "landlock-split": "Landlock only, no mount namespaces: a directory that "
    "holds a protected path (the workspace root, .git/, Logs/) takes no new "
    "entries and loses none (no `mkdir d` at the root, no `git rebase` or "
    "`git commit` below L2), and chmod, chown, utime and extended attributes "
    "outside the grants are not refused, and programs can read guard's home "
    "(its keys and approvals)",
    "outside": "Landlock only, no mount namespaces: nothing protected lies "
    "inside a grant here; chmod, chown, utime and extended attributes "
    "outside the grants are not refused, and programs can read guard's home "
    "(its keys and approvals)",
    "none": "no filesystem enforcement",
}
_MIN_LANDLOCK_NET = 4
_PRIVATE_NETWORK = frozenset({"netns", "proxy"})


def probe_linux() -> Capabilities:
    """Probe Landlock, namespaces and cgroup v2 without starting a process."""
    root = os.geteuid() == 0
    userns = unprivileged_userns_enabled()
    can = root or userns
    arch = seccomp.arch_of_machine()
    return Capabilities(
        platform="linux",
        landlock_abi=landlock.abi_version(),
        netns=os.path.exists("/proc/self/ns/net") and can,
        userns=userns,
        root=root,
        mountns=os.path.exists("/proc/self/ns/mnt") and can,
        cgroup_v2=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        pidns=all(
            os.path.exists(f"/proc/self/ns/{kind}") for kind in ("pid", "ipc", "uts")
        )
        and can,
        seccomp_arch=arch.name if arch is not None and _has_seccomp() else None,
        drop_bounding=capabilities.may_drop_bounding() if root else userns,
    )


def _has_seccomp() -> bool:
    """The kernel has seccomp filters (the status file names the mode)."""
    try:
        with open("/proc/self/status", "rb") as status:
            return b"\nSeccomp:" in status.read()
    except OSError:
        return False


def plan_seal(caps: Capabilities, *, unix_sockets: bool, missing: list[str]) -> Seal:
    """What the program is denied beyond files and network, on this machine.

    Args:
        caps: the probe result.
        unix_sockets: the policy lets this level create Unix sockets.
        missing: gets the layers this machine cannot provide.
    """
    namespaces: tuple[str, ...] = ()
    if caps.pidns:
        namespaces = ("pid", "ipc", "uts")
    else:
        missing.append("pid namespace")
    if caps.seccomp_arch is None:
        missing.append("seccomp")
    if not caps.drop_bounding:
        missing.append("bounding set")
    filtered = caps.seccomp_arch is not None
    return Seal(
        namespaces=namespaces,
        user_namespace=bool(namespaces) and not caps.root,
        capabilities="none" if caps.drop_bounding else "none-bounding-kept",
        seccomp=caps.seccomp_arch or "none",
        unix_sockets="denied" if filtered and not unix_sockets else "allowed",
    )


def _within(path: str, root: str) -> bool:
    # NOTE(speed): the same test as classify.paths.is_within, kept here because
    # importing the classify package would put it on `guard run`'s client path.
    return path == root or path.startswith(root.rstrip("/") + "/")


def protected_paths(level: Level, layout: FsLayout) -> tuple[str, ...]:
    """Return the paths kept read-only at ``level`` (the policy's only below L2).

    Guard's own runtime stays read-only below L3 (at L3, installing into an
    environment guard shares with the project is the level's purpose).
    """
    paths = list(layout.protected)
    if level < Level.L2:
        paths += layout.protected_data
    if level < Level.L3:
        paths += layout.runtime
    return tuple(dict.fromkeys(os.path.normpath(p) for p in paths))


@dataclass(frozen=True)
class GrantPlan:
    """The filesystem part of a plan.

    Attributes:
        grants: Landlock write grants (everything is readable).
        readonly: protected paths bound read-only (mount mode).
        pinned: directories bound over themselves to keep their name.
        hidden: directories covered by an empty read-only file system
            (mount mode): guard's home, unreadable at every level.
        tmp_cover: (the directory holding every program's private temporary
            directory, this one's): covered but for this one (mount mode).
        protect: ``mount`` (a read-only view with the grants on top, even
            when no protected path lies inside a grant: it also covers
            metadata), ``landlock-split``, or ``outside`` (Landlock only, no
            protected path inside a writable tree).
    """

    grants: tuple[Grant, ...]
    readonly: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    tmp_cover: tuple[str, ...] = ()
    protect: str = "outside"


def plan_grants(
    level: Level, layout: FsLayout, *, can_mount: bool = False
) -> GrantPlan:
    """Return what ``level`` may write and how the protected paths are kept.

    Args:
        level: the autonomy level.
        layout: resolved paths of the workspace, temp dirs and protected paths.
        can_mount: the program gets a private mount namespace.

    Raises:
        SandboxUnavailable: a hidden directory (guard's home) holds a
            writable root: hiding it would hide the program's own files.
    """
    roots = [layout.private_tmp]
    if level >= Level.L1:
        roots += [layout.workspace, layout.system_tmp, *layout.temp_dirs]
    existing = tuple(
        dict.fromkeys(
            os.path.normpath(r) for r in roots if os.path.exists(os.path.normpath(r))
        )
    )
    protected = protected_paths(level, layout)
    devices = tuple(Grant(d, "device") for d in _L0_DEVICES)
    if can_mount:
        plan = _mount_plan(existing, protected, devices, _hidden(layout, existing))
        return replace(plan, tmp_cover=_tmp_cover(layout))
    splitter = _Splitter(protected)
    for root in existing:
        splitter.grant(root)
    return GrantPlan(
        grants=_without_nested([*devices, *splitter.grants]),
        protect="landlock-split" if splitter.split else "outside",
    )


def _tmp_cover(layout: FsLayout) -> tuple[str, ...]:
    """The private temporary directories' directory and this program's own.

    Other programs' private directories (another session's scripts and
    files, at any level) are out of sight: L0 read them, L1 wrote them.
    """
    parent = os.path.dirname(layout.private_tmp)
    if not os.path.basename(parent).startswith(PRIVATE_TMP_PARENT):
        return ()  # made in the old place (see make_private_tmp)
    return (parent, layout.private_tmp)


def _hidden(layout: FsLayout, roots: tuple[str, ...]) -> tuple[str, ...]:
    """The hidden directories that can be covered; fail on one holding a root."""
    hidden = tuple(path for path in layout.hidden if _mountable(path))
    for path in hidden:
        for root in (*roots, layout.workspace):
            if _within(root, path):
                raise SandboxUnavailable(
                    f"guard's home {path} holds {root}: a program cannot be kept "
                    "from reading its keys without hiding its own files",
                    hint="set STATETRACE_GUARD_HOME to a directory outside the "
                    "workspace and the temporary directories",
                )
    return hidden


def _mount_plan(
    roots: tuple[str, ...],
    protected: tuple[str, ...],
    devices: tuple[Grant, ...],
    hidden: tuple[str, ...],
) -> GrantPlan:
    """Whole roots writable; protected paths inside them bound read-only.

    A protected path in or under a hidden directory needs no bind of its
    own: the empty file system over the directory covers it.
    """
    grants = _without_nested([Grant(root, "write") for root in roots])
    writable = tuple(g.path for g in grants)
    inside = [
        path
        for path in protected
        if any(_within(path, root) for root in writable)
        and not any(_within(path, h) for h in hidden)
        and _mountable(path)
    ]
    readonly = tuple(sorted(inside, key=lambda p: (p.count("/"), p)))
    return GrantPlan(
        grants=(*devices, *grants),
        readonly=readonly,
        pinned=plan_pins(writable, (*readonly, *hidden)),
        hidden=hidden,
        protect="mount",
    )


def _mountable(path: str) -> bool:
    """A path a bind can cover: present, and not a symlink (mount follows those)."""
    return os.path.lexists(path) and not os.path.islink(path)


class _Splitter:
    """Grants a writable root, split around its protected paths (Landlock only)."""

    def __init__(self, protected: tuple[str, ...]) -> None:
        self.protected = protected
        self.grants: list[Grant] = []
        self.split = False

    def grant(self, root: str) -> None:
        inside = tuple(p for p in self.protected if _within(p, root))
        if not inside:
            self.grants.append(Grant(root, "write"))
            return
        if root in inside:
            return
        self.split = True
        for entry in _entries(root):
            if entry.path in inside or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False) and any(
                _within(p, entry.path) for p in inside
            ):
                self.grant(entry.path)
            else:
                self.grants.append(Grant(entry.path, "write"))


def _entries(root: str) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []


def _without_nested(grants: list[Grant]) -> tuple[Grant, ...]:
    """Drop write grants inside another write grant: they add nothing.

    At L1 the private temporary directory lies in the system one; without
    it, the grants (and so the ruleset) stay the same from command to
    command. Linear in the grants: a split /tmp can give hundreds.
    """
    writable = {grant.path for grant in grants if grant.kind == "write"}
    return tuple(
        grant
        for grant in grants
        if grant.kind != "write" or not _below_any(grant.path, writable)
    )


def _below_any(path: str, roots: set[str]) -> bool:
    """Whether a proper ancestor of ``path`` is one of ``roots``."""
    current = path
    while (parent := os.path.dirname(current)) != current:
        if parent in roots:
            return True
        current = parent
    return False


def _network_to_join(plan: SandboxPlan) -> int | None:
    """The session's namespace (below L3), else the one prepared ahead of time.

    Raises:
        SandboxUnavailable: the session's namespace cannot be made or opened.
    """
    path = plan.details.get("session_network")
    if not isinstance(path, str):
        return take_reserved_network_namespace()
    try:
        return open_session_network(path)
    except OSError as exc:
        raise SandboxUnavailable(f"session network namespace: {exc}") from None


class LinuxChildSetup:
    """Built in the parent: a ruleset, the mount plan, a seccomp program."""

    def __init__(
        self,
        ruleset: Ruleset | None,
        plan: SandboxPlan,
        *,
        shared: bool = False,
        devices: PrivateDevices | None = None,
        abi: int = 0,
    ) -> None:
        """Keep the prepared ruleset and what the namespaces must do.

        A ``shared`` ruleset belongs to the cache, which closes it; the
        private ``devices`` are this program's (closed by close()).
        """
        self._devices = devices
        self._plan, self._abi = plan, abi  # to build a private copy of a shared one
        self._grants = {grant.path: grant.kind for grant in plan.grants}
        self._ruleset = ruleset
        self._shared = shared
        self._sealed = False  # capabilities and seccomp taken already (seal)
        self._as_root = plan.details.get("namespaces") == "root"
        # At L3 with the opt-in ("proxy") the program keeps its own network
        # namespace too; its one way out is the guard's proxy (issue 18).
        self._network = plan.enforcement.get("network") in _PRIVATE_NETWORK
        self._proxy_channel = (
            take_proxy_channel() if plan.enforcement.get("network") == "proxy" else None
        )
        self._mounts = (
            MountPlan(
                writable=tuple(
                    g.path
                    for g in plan.grants
                    if g.kind == "write"
                    and (not _private_dev(plan) or g.path not in _PRIVATE_DEVICES)
                ),
                pinned=plan.pinned,
                readonly=plan.readonly,
                hidden=plan.hidden,
                tmp_cover=plan.tmp_cover,
                private_dev=devices,
                make_devices=plan.details.get("devices") == "private-init",
            )
            if plan.details.get("protect") == "mount"
            else None
        )
        seal = plan.seal
        self.pid_namespace = "none"
        if "pid" in seal.namespaces:
            self.pid_namespace = "root" if self._as_root else "user"
        self._bounding = seal.capabilities == "none"
        self._filter: tuple[seccomp.Arch, bytes] | None = None
        arch = seccomp.arch_of_machine(seal.seccomp)
        if seal.seccomp != "none":
            if arch is None:
                raise SandboxUnavailable(f"no seccomp filter for {seal.seccomp}")
            spec = seccomp.FilterSpec(unix_sockets=seal.unix_sockets == "allowed")
            self._filter = (arch, seccomp.build_program(arch, spec))
        self._prepared_network = (
            _network_to_join(plan) if self._network and self._as_root else None
        )
        # Held open by this (supervisor) process until it exits: see
        # mounts.make_mount_namespace. Never closed by close().
        self._prepared_mounts = (
            take_reserved_mount_namespace()
            if self._mounts is not None and self._as_root
            else None
        )

    def enter(self) -> None:
        """Enter the namespaces and build the mount view.

        With a PID namespace (the caller is its init): new IPC, UTS and mount
        namespaces and a fresh ``/proc``. The runner enters the working
        directory afterwards, in the new view (issue 12 K3).
        """
        isolate = self.pid_namespace != "none"
        prepared = self._prepared_mounts is not None
        if self._network or self._mounts is not None or isolate:
            enter_namespaces(
                as_root=self._as_root,
                network=self._network,
                mounts=(self._mounts is not None or isolate) and not prepared,
                prepared_network=self._prepared_network,
                isolate=isolate,
                user_entered=self.pid_namespace == "user",
            )
        if self._proxy_channel is not None:
            channel, self._proxy_channel = self._proxy_channel, None
            send_listener(channel)  # made in the new namespace, served outside
        if self._prepared_mounts is not None:
            enter_mount_namespace(self._prepared_mounts)
        if self._mounts is not None:
            apply_mounts(self._mounts, fresh_proc=isolate)
            if self._mounts.make_devices and self._ruleset is not None:
                _allow_view_devices(self._ruleset, self._grants)
        elif isolate:
            private_proc()

    def add_outputs(self, output_fds: tuple[int, ...]) -> None:
        """The write grant on output files, added to a ruleset built without them.

        A shared (cached) ruleset is never changed: a private one is built.

        Raises:
            SandboxUnavailable: the grant cannot be added.
        """
        outputs = _writable_files(output_fds)
        if not outputs or self._ruleset is None:
            return
        if self._shared:
            private = _build_ruleset(self._plan, self._abi, outputs)
            self._ruleset, self._shared = private, False
            return
        try:
            for fd in outputs:
                self._ruleset.allow_open_file(fd, landlock.ACCESS_FILE_WRITE)
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot build the Landlock ruleset: {exc}",
                hint="run `guard doctor` to see what this machine supports",
            ) from exc

    def restrict(self) -> None:
        """Landlock, then (unless sealed already) no capabilities and seccomp.

        Raises:
            OSError: a step failed, or the kernel still shows a capability.
        """
        if self._ruleset is not None:
            self._ruleset.restrict_self()
        if not self._sealed:
            self.seal()

    def seal(self) -> None:
        """No capabilities, no new privileges, seccomp; check what is left.

        NOTE(speed): an init forked ahead seals itself while it waits for the
        client's go (0.5-1 ms: the capability calls, the filter, the status
        read), leaving only Landlock for after it: its grants may include the
        client's output files, which come with the go. Nothing it does after
        the go needs a privilege (descriptors, the working directory, the
        spawn); a process forked from it (the program) inherits all of it.

        Raises:
            OSError: a step failed, or the kernel still shows a capability.
        """
        capabilities.drop_all(bounding=self._bounding)
        if self._filter is not None:
            seccomp.install(self._filter[1], self._filter[0])
        else:
            landlock.set_no_new_privs()
        left = capabilities.check_dropped(
            bounding=self._bounding, seccomp=self._filter is not None
        )
        if left is not None:
            raise OSError(0, f"privileges left before exec: {left}")
        self._sealed = True

    def close(self) -> None:
        """Close the descriptors in the parent (a cached ruleset stays)."""
        if self._ruleset is not None and not self._shared:
            self._ruleset.close()
        if self._devices is not None:
            self._devices.close()
            self._devices = None
        if self._prepared_network is not None:
            os.close(self._prepared_network)
            self._prepared_network = None
        if self._proxy_channel is not None:  # the proxy sees EOF if none came
            os.close(self._proxy_channel)
            self._proxy_channel = None


class LinuxBackend:
    """Landlock + namespaces; the probe is cached per instance."""

    name = "linux"

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        """Use ``capabilities`` as the probe result (tests), else probe once."""
        self._caps = capabilities

    def probe(self) -> Capabilities:
        """Return what the machine offers (probed on first use)."""
        if self._caps is None:
            self._caps = probe_linux()
        return self._caps

    def plan(
        self,
        level: Level,
        network_open: bool,
        layout: FsLayout,
        *,
        unix_sockets: bool = False,
    ) -> SandboxPlan:
        """Decide enforcement for ``level``; see the module docstring."""
        caps = self.probe()
        missing: list[str] = []
        network = _network_mode(caps, network_open, missing)
        files = GrantPlan(grants=(), protect="none")
        filesystem = "none"
        if caps.landlock_abi >= 1:
            filesystem = f"landlock-abi-{caps.landlock_abi}"
            files = plan_grants(level, layout, can_mount=caps.mountns)
            if not caps.mountns:
                missing.append("mounts")
        else:
            missing.append("filesystem")
        seal = plan_seal(caps, unix_sockets=unix_sockets, missing=missing)
        return SandboxPlan(
            level=level,
            network_open=network_open,
            enforcement={
                "network": network,
                "filesystem": filesystem,
                **seal.as_enforcement(),
            },
            missing=tuple(missing),
            grants=files.grants,
            readonly=files.readonly,
            pinned=files.pinned,
            hidden=files.hidden,
            tmp_cover=files.tmp_cover,
            backend=self.name,
            details={
                "namespaces": "root" if caps.root else "user",
                "protect": files.protect,
                "devices": _devices_mode(caps, files, layout),
            },
            seal=seal,
        )

    def keep_prepared(self, plan: SandboxPlan) -> None:
        """Build (or find) the shared ruleset and seccomp program for ``plan``."""
        if plan.enforcement.get("filesystem", "none") != "none" and not _private_dev(
            plan
        ):  # with private devices every program gets its own
            _RULESETS.get(plan, self.probe().landlock_abi)
        arch = seccomp.arch_of_machine(plan.seal.seccomp)
        if arch is not None:  # cached: every later supervisor finds it built
            unix = plan.seal.unix_sockets == "allowed"
            seccomp.build_program(arch, seccomp.FilterSpec(unix_sockets=unix))

    def prepare_rules(self, plan: SandboxPlan) -> PreparedRules | None:
        """The program's own devices and ruleset for ``plan``, built ahead.

        For an init forked before its command: ``child_setup`` takes them
        when the command's plan grants the same (see ``PreparedRules``).
        None where a program gets no devices of its own (a shared ruleset
        is cached already).
        """
        if (
            plan.details.get("devices") != "private"
            or plan.enforcement.get("filesystem", "none") == "none"
        ):
            return None
        abi = self.probe().landlock_abi
        key = _ruleset_key(plan, abi)
        if key is None:
            return None
        devices = _make_devices()
        try:
            ruleset = _build_ruleset(plan, abi, (), devices)
        except BaseException:
            devices.close()
            raise
        return PreparedRules(key, ruleset, devices)

    def child_setup(
        self,
        plan: SandboxPlan,
        output_fds: tuple[int, ...] = (1, 2),
        prepared: object | None = None,
    ) -> LinuxChildSetup:
        """Build the Landlock ruleset now; the child only enters it.

        ``prepared`` (from ``prepare_rules``) is used when it grants what
        ``plan`` grants on the same inodes and no output needs a rule; it is
        closed otherwise.

        Raises:
            SandboxUnavailable: the ruleset cannot be built.
        """
        if isinstance(prepared, PreparedRules):
            taken = prepared.take(plan, self.probe().landlock_abi, output_fds)
            if taken is not None:
                return taken
        if plan.enforcement.get("filesystem", "none") == "none":
            return LinuxChildSetup(None, plan)
        abi = self.probe().landlock_abi
        outputs = _writable_files(output_fds)
        if plan.details.get("devices") == "private-init":  # rules added by init
            ruleset = _build_ruleset(plan, abi, outputs, devices=None, host_dev=False)
            return LinuxChildSetup(ruleset, plan)
        if _private_dev(plan):  # rules on this program's own devices: never shared
            devices = _make_devices()
            try:
                ruleset = _build_ruleset(plan, abi, outputs, devices)
            except BaseException:
                devices.close()
                raise
            return LinuxChildSetup(ruleset, plan, devices=devices)
        if outputs:  # a grant for these very files: never shared
            return LinuxChildSetup(_build_ruleset(plan, abi, outputs), plan)
        return LinuxChildSetup(_RULESETS.get(plan, abi), plan, shared=True, abi=abi)


@dataclass
class PreparedRules:
    """A program's own devices and ruleset, built before its command came.

    NOTE(speed): building them took ~0.5 ms of the command's path in init.
    Valid for a plan only when the ruleset key (every granted path and the
    inode there *now*, as the ruleset cache checks) is the same: a replaced
    directory gets a fresh ruleset, never a stale one.
    """

    key: tuple[object, ...]
    ruleset: Ruleset
    devices: PrivateDevices

    def take(
        self, plan: SandboxPlan, abi: int, output_fds: tuple[int, ...]
    ) -> LinuxChildSetup | None:
        """The setup for ``plan`` on these, or None (and they are closed)."""
        fits = (
            plan.details.get("devices") == "private"
            and plan.enforcement.get("filesystem", "none") != "none"
            and not _writable_files(output_fds)
            and _ruleset_key(plan, abi) == self.key
        )
        if not fits:
            self.ruleset.close()
            self.devices.close()
            return None
        return LinuxChildSetup(self.ruleset, plan, devices=self.devices)


def _make_devices() -> PrivateDevices:
    try:
        return make_private_devices()
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot make the program's own /dev/pts and /dev/shm: {exc}",
            hint="run `guard doctor` to see what this machine supports",
        ) from exc


def _network_mode(caps: Capabilities, network_open: bool, missing: list[str]) -> str:
    if network_open:
        if caps.netns:
            return "proxy"
        missing.append("network")  # no namespace: the host's whole network
        return "open"
    if caps.netns:
        return "netns"
    if caps.landlock_abi >= _MIN_LANDLOCK_NET:
        return "landlock"
    missing.append("network")
    return "none"


def _writable_files(fds: tuple[int, ...]) -> tuple[int, ...]:
    """Those of ``fds`` that are regular files open for writing.

    The program may reopen its stdout/stderr file (``> /dev/stderr``); when
    that is a regular file outside the granted trees, it needs a rule.
    """
    found = []
    for fd in fds:
        try:
            mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            continue
        if regular and mode in (os.O_WRONLY, os.O_RDWR):
            found.append(fd)
    return tuple(found)


class _RulesetCache:
    """Rulesets by what they grant, for a process that runs many programs.

    Building one costs an open and a syscall per grant (~2 ms for a split
    workspace); the resident helper runs command after command under the
    same grants. A ruleset holds the inodes it was built on, so the key is
    every granted path *and* the identity of the inode there now: a
    directory that was replaced gets a new ruleset, never a stale one. A
    path that cannot be examined is never cached.
    """

    _LIMIT = 32

    def __init__(self) -> None:
        self._rulesets: dict[tuple[object, ...], Ruleset] = {}

    def get(self, plan: SandboxPlan, abi: int) -> Ruleset:
        key = _ruleset_key(plan, abi)
        if key is None:
            return _build_ruleset(plan, abi)
        ruleset = self._rulesets.get(key)
        if ruleset is None:
            ruleset = _build_ruleset(plan, abi)
            if len(self._rulesets) >= self._LIMIT:
                oldest = next(iter(self._rulesets))
                self._rulesets.pop(oldest).close()
            self._rulesets[key] = ruleset
        return ruleset


def _ruleset_key(plan: SandboxPlan, abi: int) -> tuple[object, ...] | None:
    key: list[object] = [abi, plan.network_open, plan.enforcement.get("network")]
    for grant in plan.grants:
        try:
            info = os.lstat(grant.path)
        except OSError:
            return None
        key.append((grant.path, grant.kind, info.st_dev, info.st_ino))
    return tuple(key)


_RULESETS = _RulesetCache()


# Mounted afresh in the program's view (mounts.PrivateDevices).
_PRIVATE_DEVICES = frozenset({"/dev/shm", "/dev/pts", "/dev/ptmx"})  # noqa: S108


def _private_dev(plan: SandboxPlan) -> bool:
    """Whether the program gets a fresh /dev (decided by the plan, see below)."""
    return plan.details.get("devices") in {"private", "private-init"}


def _devices_mode(caps: Capabilities, files: GrantPlan, layout: FsLayout) -> str:
    """``private`` where root builds a mount view and nothing of ours is in /dev.

    (A workspace or temp directory in /dev/shm would vanish under a fresh
    /dev: that view keeps the host's.)
    """
    if files.protect != "mount":
        return "host"
    ours = (layout.workspace, layout.private_tmp, layout.system_tmp)
    if any(_within(path, "/dev") for path in ours):
        return "host"
    # Without root the parent cannot make mounts: the program's init makes
    # them in its user namespace and adds their rules to its own ruleset.
    return "private" if caps.root else "private-init"


def _allow_view_devices(ruleset: Ruleset, granted: Mapping[str, str]) -> None:
    """In init, after its mounts: the level's device grants on the new /dev."""
    if "/dev/pts" in granted:
        ruleset.allow_path("/dev/pts", landlock.ACCESS_DEVICE)
    if "/dev/ptmx" in granted:
        ruleset.allow_path("/dev/pts/ptmx", landlock.ACCESS_DEVICE)
    if granted.get("/dev/shm") == "write":  # noqa: S108 - L1 and up
        ruleset.allow_path("/dev/shm", landlock.ACCESS_WRITE)  # noqa: S108


def _allow_private_devices(
    ruleset: Ruleset, plan: SandboxPlan, devices: PrivateDevices
) -> None:
    """The level's device and temp grants, on the program's own instances."""
    granted = {grant.path: grant.kind for grant in plan.grants}
    if "/dev/pts" in granted:
        ruleset.allow_fd(os.dup(devices.pts), "/dev/pts", landlock.ACCESS_DEVICE)
    if "/dev/ptmx" in granted:
        ruleset.allow_fd(devices.ptmx(), "/dev/ptmx", landlock.ACCESS_DEVICE)
    if granted.get("/dev/shm") == "write":  # noqa: S108 - L1 and up
        ruleset.allow_fd(os.dup(devices.shm), "/dev/shm", landlock.ACCESS_WRITE)  # noqa: S108


def _build_ruleset(
    plan: SandboxPlan,
    abi: int,
    outputs: tuple[int, ...] = (),
    devices: PrivateDevices | None = None,
    *,
    host_dev: bool = True,
) -> Ruleset:
    access = {"write": landlock.ACCESS_WRITE, "device": landlock.ACCESS_DEVICE}
    closed = not plan.network_open
    try:
        ruleset = landlock.Ruleset.create(
            abi,
            deny_tcp=closed and plan.enforcement.get("network") == "landlock",
            scope_unix=closed,
        )
        try:
            ruleset.allow_path("/", landlock.ACCESS_READ)
            for grant in plan.grants:
                private = devices is not None or not host_dev
                if not private or grant.path not in _PRIVATE_DEVICES:
                    ruleset.allow_path(grant.path, access[grant.kind])
            if devices is not None:
                _allow_private_devices(ruleset, plan, devices)
            for fd in outputs:
                ruleset.allow_open_file(fd, landlock.ACCESS_FILE_WRITE)
        except BaseException:
            ruleset.close()
            raise
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot build the Landlock ruleset: {exc}",
            hint="run `guard doctor` to see what this machine supports",
        ) from exc
    return ruleset
