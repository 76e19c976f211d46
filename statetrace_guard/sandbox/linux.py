"""The Linux backend: Landlock for files (and TCP as a fallback), namespaces.

What each level gets (issue 5, section 1):

* every level reads everything; L0 writes only ``/dev/null``, ``/dev/tty``,
  ``/dev/ptmx``, ``/dev/pts`` (a terminal for interactive programs) and the
  per-command private temporary directory;
* L1 and up also write the workspace, the system temporary directory and
  ``/dev/shm`` (POSIX semaphores used by multiprocessing);
* the guard's own paths (log subdirectories, home, policy file) are never
  writable, and ``.git/hooks`` and ``.git/config`` stay read-only below L2;
* the network is closed unless ``network_open``: a private network namespace
  where one can be created, else Landlock ABI >= 4 denying TCP bind and
  connect, else nothing (listed in ``missing``).

NOTE(sandbox): Landlock cannot deny inside an allowed tree, so a writable root
that contains a protected path is *split*: each of its entries is granted on
its own, recursing into the entries that contain a protected path. What the
split directory itself gets depends on what the machine offers:

* ``mount-ro`` (root, or unprivileged user namespaces): the protected paths
  are bind-mounted read-only in a private mount namespace, and each split
  directory gets every right except removing/renaming directories beneath it
  (``keep-dirs``), so the protected path cannot be moved away or replaced.
  New files and directories at the workspace root work; only removing or
  renaming a *directory* that sits directly in a split directory (e.g.
  ``rmdir build`` at the workspace root) is refused.
* ``landlock-split`` (no namespaces, or a protected path that does not exist
  yet): the split directory gets nothing: existing entries are writable, but
  new entries directly in it cannot be created, and its files cannot be
  deleted or renamed (e.g. no new file at the workspace root, no
  ``.git/index.lock`` below L2). Granting "create" there would let the
  program plant symlinks inside the guard's directories.

Symlinks among the split entries get no grant: a write through one is judged
at its target.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import TYPE_CHECKING

from statetrace_guard.errors import SandboxUnavailable
from statetrace_guard.levels import Level
from statetrace_guard.sandbox import landlock
from statetrace_guard.sandbox.base import (
    Capabilities,
    FsLayout,
    Grant,
    SandboxPlan,
)
from statetrace_guard.sandbox.netns import (
    enter_namespaces,
    take_reserved_network_namespace,
    unprivileged_userns_enabled,
)

if TYPE_CHECKING:
    from statetrace_guard.sandbox.landlock import Ruleset

__all__ = [
    "LinuxBackend",
    "LinuxChildSetup",
    "plan_grants",
    "probe_linux",
    "protected_paths",
]

_L0_DEVICES = ("/dev/null", "/dev/tty", "/dev/ptmx", "/dev/pts")
_MIN_LANDLOCK_NET = 4


def probe_linux() -> Capabilities:
    """Probe Landlock, namespaces and cgroup v2 without starting a process."""
    root = os.geteuid() == 0
    userns = unprivileged_userns_enabled()
    return Capabilities(
        platform="linux",
        landlock_abi=landlock.abi_version(),
        netns=os.path.exists("/proc/self/ns/net") and (root or userns),
        userns=userns,
        root=root,
        mountns=os.path.exists("/proc/self/ns/mnt") and (root or userns),
        cgroup_v2=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    )


def _within(path: str, root: str) -> bool:
    # NOTE(speed): the same test as classify.paths.is_within, kept here because
    # importing the classify package would put it on `guard run`'s client path.
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mountable(path: str) -> bool:
    return os.path.exists(path) and not os.path.islink(path)


def protected_paths(level: Level, layout: FsLayout) -> tuple[str, ...]:
    """Return the paths kept read-only for ``level`` (guard's + git's)."""
    paths = list(layout.protected)
    if layout.git_dir is not None and level < Level.L2:
        # Only those that exist: a missing one cannot be mounted read-only and
        # would force the strict split on the workspace root (no new files
        # there). A repository without hooks/ has nothing to protect yet.
        paths += [
            path
            for path in (f"{layout.git_dir}/hooks", f"{layout.git_dir}/config")
            if os.path.lexists(path)
        ]
    return tuple(os.path.normpath(p) for p in paths)


class _Splitter:
    """Grants a writable root, splitting around the protected paths in it."""

    def __init__(self, protected: tuple[str, ...], can_mount: bool) -> None:
        self.protected = protected
        self.can_mount = can_mount
        self.grants: list[Grant] = []
        self.readonly: list[str] = []
        self.split = False

    def grant(self, root: str) -> None:
        inside = tuple(p for p in self.protected if _within(p, root))
        if not inside:
            self.grants.append(Grant(root, "write"))
            return
        if root in inside:
            self._protect(root)
            return
        self.split = True
        if self.can_mount and all(_mountable(p) for p in inside):
            self.grants.append(Grant(root, "keep-dirs"))
        for entry in _entries(root):
            if entry.path in inside:
                self._protect(entry.path)
            elif entry.is_symlink():
                continue
            elif entry.is_dir(follow_symlinks=False) and any(
                _within(p, entry.path) for p in inside
            ):
                self.grant(entry.path)
            else:
                self.grants.append(Grant(entry.path, "write"))

    def _protect(self, path: str) -> None:
        if self.can_mount and _mountable(path) and path not in self.readonly:
            self.readonly.append(path)


def _entries(root: str) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []


def plan_grants(
    level: Level, layout: FsLayout, *, can_mount: bool = False
) -> tuple[tuple[Grant, ...], tuple[str, ...], str]:
    """Return the write grants, read-only mounts and protection method.

    Args:
        level: the autonomy level.
        layout: resolved paths of the workspace, temp dirs and protected paths.
        can_mount: protected paths may be bind-mounted read-only.

    Returns:
        ``(grants, readonly, protect)``: everything not granted is
        read-only; ``protect`` is ``mount-ro``, ``landlock-split`` or
        ``outside`` (no protected path lies inside a writable tree).
    """
    roots = [layout.private_tmp]
    if level >= Level.L1:
        roots += [layout.workspace, layout.system_tmp, "/dev/shm"]  # noqa: S108
    splitter = _Splitter(protected_paths(level, layout), can_mount)
    splitter.grants += [Grant(d, "device") for d in _L0_DEVICES]
    seen: set[str] = set()
    for root in roots:
        norm = os.path.normpath(root)
        if norm not in seen and os.path.exists(norm):
            seen.add(norm)
            splitter.grant(norm)
    protect = "mount-ro" if splitter.readonly else "landlock-split"
    if not splitter.split:
        protect = "outside"
    return _without_nested(splitter.grants), tuple(splitter.readonly), protect


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


class LinuxChildSetup:
    """Built in the parent: an open ruleset; applied in the child."""

    def __init__(
        self, ruleset: Ruleset | None, plan: SandboxPlan, *, shared: bool = False
    ) -> None:
        """Keep the prepared ruleset and what the namespaces must do.

        A ``shared`` ruleset belongs to the cache, which closes it.
        """
        self._ruleset = ruleset
        self._shared = shared
        self._as_root = plan.details.get("namespaces") == "root"
        self._network = plan.enforcement.get("network") == "netns"
        self._readonly = plan.readonly
        self._prepared_network = (
            take_reserved_network_namespace()
            if self._network and self._as_root
            else None
        )

    def __call__(self) -> None:
        """Enter the namespaces, then restrict the filesystem with Landlock."""
        if self._network or self._readonly:
            enter_namespaces(
                as_root=self._as_root,
                network=self._network,
                readonly=self._readonly,
                prepared_network=self._prepared_network,
            )
        if self._ruleset is not None:
            self._ruleset.restrict_self()

    def close(self) -> None:
        """Close the descriptors in the parent (a cached ruleset stays)."""
        if self._ruleset is not None and not self._shared:
            self._ruleset.close()
        if self._prepared_network is not None:
            os.close(self._prepared_network)
            self._prepared_network = None


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

    def plan(self, level: Level, network_open: bool, layout: FsLayout) -> SandboxPlan:
        """Decide enforcement for ``level``; see the module docstring."""
        caps = self.probe()
        missing: list[str] = []
        network = _network_mode(caps, network_open, missing)
        grants: tuple[Grant, ...] = ()
        readonly: tuple[str, ...] = ()
        filesystem, protect = "none", "none"
        if caps.landlock_abi >= 1:
            filesystem = f"landlock-abi-{caps.landlock_abi}"
            grants, readonly, protect = plan_grants(
                level, layout, can_mount=caps.mountns
            )
        else:
            missing.append("filesystem")
        return SandboxPlan(
            level=level,
            network_open=network_open,
            enforcement={"network": network, "filesystem": filesystem},
            missing=tuple(missing),
            grants=grants,
            readonly=readonly,
            backend=self.name,
            details={
                "namespaces": "root" if caps.root else "user",
                "protect": protect,
            },
        )

    def keep_prepared(self, plan: SandboxPlan) -> None:
        """Build (or find) the shared ruleset for ``plan`` in this process."""
        if plan.enforcement.get("filesystem", "none") != "none":
            _RULESETS.get(plan, self.probe().landlock_abi)

    def child_setup(
        self, plan: SandboxPlan, output_fds: tuple[int, ...] = (1, 2)
    ) -> LinuxChildSetup:
        """Build the Landlock ruleset now; the child only enters it.

        Raises:
            SandboxUnavailable: the ruleset cannot be built.
        """
        if plan.enforcement.get("filesystem", "none") == "none":
            return LinuxChildSetup(None, plan)
        abi = self.probe().landlock_abi
        outputs = _writable_files(output_fds)
        if outputs:  # a grant for these very files: never shared
            return LinuxChildSetup(_build_ruleset(plan, abi, outputs), plan)
        return LinuxChildSetup(_RULESETS.get(plan, abi), plan, shared=True)


def _network_mode(caps: Capabilities, network_open: bool, missing: list[str]) -> str:
    if network_open:
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


def _build_ruleset(
    plan: SandboxPlan, abi: int, outputs: tuple[int, ...] = ()
) -> Ruleset:
    access = {
        "write": landlock.ACCESS_WRITE,
        "keep-dirs": landlock.ACCESS_KEEP_DIRS,
        "device": landlock.ACCESS_DEVICE,
    }
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
                ruleset.allow_path(grant.path, access[grant.kind])
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
