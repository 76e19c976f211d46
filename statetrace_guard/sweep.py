"""After the program: remove what appeared that may not exist below L2 (or at all).

A read-only bind needs an existing mount point, and Landlock cannot refuse
one name in a writable directory, so a protected path that did not exist when
the program started can be created by it: a workspace ``guard.toml`` (issue
12 K6), ``.git/commondir`` (K7), a ``.git`` file or repository in a subfolder
(K8), a ``[protect]`` path such as ``.claude/settings.local.json``. Before
``guard run`` returns, the sweep finds every such entry created during the
command (inode change time at or after the start), moves it out of the
workspace into guard's home (``quarantine/``, where no program can write) and
records it in ``command.finished`` (``planted``).

NOTE(sweep): this is a check after the fact, not a kernel refusal: while the
command runs (and for a background process it leaves behind, until the next
writing command) the planted path exists, and a git command the operator runs
in that window can read it. The workspace policy is also pinned by its sha256
(:mod:`statetrace_guard.trust`), so a ``guard.toml`` that appears or changes
is refused until the operator accepts it, whenever it appeared.

Cost: only commands that may write (any effect beyond reading) at L1 walk the
workspace; at L2 and up only ``guard.toml`` is checked. The walk lists only
directories changed since the last listing when a :class:`TreeCache` is kept
(the resident helper keeps one per workspace), one ``lstat`` per directory
otherwise unchanged; without one (a run in ``guard run``'s own process) the
whole tree is listed.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field

from statetrace_guard.levels import Level
from statetrace_guard.protect import ProtectPatterns, protection

__all__ = ["MISSING_PATHS", "Planted", "TreeCache", "nested_repositories", "sweep"]

# What `guard doctor` says about protected paths that do not exist yet.
MISSING_PATHS = (
    "empty .git/hooks, .git/modules and .git/worktrees are created and bound "
    "read-only below L2; anything else protected that did not exist (guard.toml, "
    ".git/commondir, .git/config, a .git in a subfolder, a [protect] path) and "
    "that a writing command creates is moved into guard's home before `guard "
    "run` returns, and recorded (planted). Residual risk: until then (and, for "
    "a background process, until the next writing command) it exists, and a "
    "git command the operator runs meanwhile can read it; a guard.toml that "
    "appears or changes is refused until `guard policy accept`."
)

# A listing is trusted while its directory's mtime is this much older than
# the listing itself: timestamps are coarse (a jiffy), so a change in the same
# tick as the listing would leave the mtime as it was.
_RACY_NS = 2_000_000_000
# Inode times come from a coarse clock that may lag the wall clock a little.
START_MARGIN_NS = 20_000_000


@dataclass(frozen=True)
class Planted:
    """A protected path the program created, and where it was moved."""

    path: str
    protected_by: str
    kept_at: str | None

    def as_record(self) -> dict[str, object]:
        """The JSON form in ``command.finished``."""
        return {
            "path": self.path,
            "protected_by": self.protected_by,
            "kept_at": self.kept_at,
        }


@dataclass
class _Listing:
    ino: int
    mtime_ns: int
    listed_ns: int
    subdirs: tuple[str, ...]
    git: bool = False  # holds a ``.git`` (directory or file)


@dataclass
class TreeCache:
    """Directory listings of one workspace, kept between sweeps."""

    listings: dict[str, _Listing] = field(default_factory=dict)


def sweep(
    *,
    level: Level,
    workspace: str,
    started_ns: int,
    patterns: ProtectPatterns,
    guard_files: tuple[str, ...],
    quarantine: str,
    cache: TreeCache | None = None,
) -> list[Planted]:
    """Find, move away and return the protected entries the command created.

    Args:
        level: the level the command ran at.
        workspace: the workspace root, resolved.
        started_ns: wall time (ns) just before the program started.
        patterns: the policy's compiled ``[protect]`` globs.
        guard_files: guard-owned files in the workspace that may not exist
            (the workspace ``guard.toml``); never allowed, at any level.
        quarantine: a directory in guard's home to move them into.
        cache: listings from earlier sweeps of this workspace.
    """
    found: list[tuple[str, str]] = [
        (path, "guard's policy file")
        for path in guard_files
        if _created_since(path, started_ns)
    ]
    if level < Level.L2:
        if cache is not None:  # the helper's own listings of this workspace
            found.extend(_planted_below_l2(workspace, started_ns, patterns, cache))
        else:
            with _TREES_LOCK:
                tree = _shared_tree(workspace)
                found.extend(_planted_below_l2(workspace, started_ns, patterns, tree))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_ns / 1e9))
    destination = os.path.join(quarantine, f"{stamp}-{os.getpid()}")
    return [
        Planted(
            path=os.path.relpath(path, workspace),
            protected_by=why,
            kept_at=_move_away(path, workspace, destination),
        )
        for path, why in found
    ]


# Listings kept per workspace in this process: the nested repositories found
# before a command (and, in guard run's own process, the sweep after it)
# walk only what changed since. The helper's worker threads share them.
_TREES: dict[str, TreeCache] = {}
_TREES_LOCK = threading.Lock()


def _shared_tree(workspace: str) -> TreeCache:
    return _TREES.setdefault(workspace, TreeCache())


def nested_repositories(workspace: str) -> tuple[str, ...]:
    """Every ``.git`` below the workspace root (nested repositories, gitdir files).

    Git reads their config and runs their hooks when the operator works in
    that folder, so they are protected below L2 like the root's. Found with
    the sweep's walk (``.git`` directories themselves are not entered); the
    listings are kept, so a later call lists only directories that changed.
    """
    with _TREES_LOCK:
        tree = _shared_tree(workspace)
        _changed_listings(workspace, tree)
        return tuple(
            sorted(
                f"{directory}/.git"
                for directory, listing in tree.listings.items()
                if listing.git and directory != workspace
            )
        )


def _created_since(path: str, started_ns: int) -> bool:
    """Changed (created, moved or linked here) since the start, and not empty.

    An empty directory means to git, editors and agents exactly what no
    entry means (it is also what the guard's own placeholders look like).
    """
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if info.st_ctime_ns < started_ns:
        return False
    if stat.S_ISDIR(info.st_mode):
        try:
            with os.scandir(path) as entries:
                return next(entries, None) is not None
        except OSError:
            return True
    return True


def _planted_below_l2(
    workspace: str, started_ns: int, patterns: ProtectPatterns, cache: TreeCache
) -> list[tuple[str, str]]:
    found = []
    for directory, names in _changed_listings(workspace, cache):
        base = os.path.relpath(directory, workspace)
        for name in names:
            rel = name if base == "." else f"{base}/{name}"
            why = protection(rel, patterns)
            if why is not None and _created_since(f"{directory}/{name}", started_ns):
                found.append((f"{directory}/{name}", why))
    # .git/ itself is not walked (objects/ alone has 256 directories): what
    # git reads from it is listed by name in the git minimum.
    for glob in patterns.globs:
        if glob.text.startswith(".git/") and "*" not in glob.text:
            path = f"{workspace}/{glob.text}"
            if _created_since(path, started_ns):
                found.append((path, glob.text))
    return found


def _changed_listings(
    workspace: str, cache: TreeCache
) -> list[tuple[str, tuple[str, ...]]]:
    """Every directory listed afresh (changed, new or never cached) and its names."""
    changed = []
    seen: set[str] = set()
    stack = [workspace]
    while stack:
        directory = stack.pop()
        seen.add(directory)
        try:
            info = os.lstat(directory)
        except OSError:
            continue
        known = cache.listings.get(directory)
        if known is not None and _still_valid(known, info):
            stack.extend(known.subdirs)
            continue
        names, subdirs = _list(directory, top=directory == workspace)
        cache.listings[directory] = _Listing(
            info.st_ino, info.st_mtime_ns, time.time_ns(), subdirs, ".git" in names
        )
        changed.append((directory, names))
        stack.extend(subdirs)
    for gone in set(cache.listings) - seen:
        del cache.listings[gone]
    return changed


def _still_valid(known: _Listing, info: os.stat_result) -> bool:
    return (
        known.ino == info.st_ino
        and known.mtime_ns == info.st_mtime_ns
        and known.listed_ns - info.st_mtime_ns > _RACY_NS
    )


def _list(directory: str, *, top: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names in ``directory`` and the subdirectories to walk (not ``.git``)."""
    names, subdirs = [], []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                names.append(entry.name)
                if entry.name == ".git" and top:
                    continue  # the workspace's own repository: see above
                if entry.name != ".git" and entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
    except OSError:
        pass
    return tuple(names), tuple(subdirs)


def _move_away(path: str, workspace: str, destination: str) -> str | None:
    """Move ``path`` under ``destination`` (keeping its relative path)."""
    target = os.path.join(destination, os.path.relpath(path, workspace))
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        shutil.move(path, target)
    except OSError:
        try:  # keep nothing rather than leave it in place
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            return None
        return "removed"
    return target
