"""The file layout a sandbox plan is made from, and what must exist first.

A read-only bind needs an existing mount point, so before a program starts
the guard creates what it can without changing what anything means: the log
subdirectories it writes anyway, and (below L2) empty ``.git/hooks``,
``.git/modules`` and ``.git/worktrees``, which git treats exactly as absent.
These are then bound read-only like every other protected path. What cannot
have a placeholder (``guard.toml``, ``.git/commondir``, a ``.git`` in a
subfolder, a ``[protect]`` path not there yet) is left to the post-command
sweep (:mod:`statetrace_guard.sweep`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from statetrace_guard.errors import AuditError
from statetrace_guard.home import guard_homes_text
from statetrace_guard.levels import Level
from statetrace_guard.paths import GUARD_LOG_SUBDIRS, guard_runtime, temp_dirs
from statetrace_guard.protect import ProtectPatterns, expand
from statetrace_guard.sandbox.base import FsLayout
from statetrace_guard.workspaces import register_log_dir

__all__ = ["GIT_PLACEHOLDERS", "fs_layout"]

GIT_PLACEHOLDERS = ("hooks", "modules", "worktrees")


def fs_layout(
    *,
    level: Level,
    workspace: str,
    log_dir: str,
    private_tmp: str,
    guard_owned: tuple[str, ...],
    patterns: ProtectPatterns,
    create: bool = True,
    listdir: Callable[[str], list[tuple[str, bool]]] | None = None,
    nested_git: tuple[str, ...] = (),
) -> FsLayout:
    """Create the placeholders (unless ``create`` is False) and list what is protected.

    Args:
        level: the level the program runs at.
        workspace: the workspace root, resolved.
        log_dir: the log directory of this run.
        private_tmp: the program's private temporary directory.
        guard_owned: resolved guard-owned paths (present or not).
        patterns: the policy's compiled ``[protect]`` globs.
        create: make the log subdirectories and git placeholders first.
        listdir: a (cached) directory lister for the glob expansion.
        nested_git: the ``.git`` entries below the workspace root (nested
            repositories): read-only below L2 like the root's hooks and config.
    """
    if create:
        _make_placeholders(level, workspace, log_dir)
    return FsLayout(
        workspace=workspace,
        private_tmp=os.path.realpath(private_tmp),
        system_tmp=temp_dirs()[0],  # the system one, resolved
        temp_dirs=tuple(path for path in temp_dirs() if os.path.isdir(path)),
        runtime=guard_runtime(),
        protected=tuple(path for path in guard_owned if os.path.lexists(path)),
        protected_data=(*expand(workspace, patterns, listdir), *nested_git)
        if level < Level.L2
        else (),
        hidden=tuple(path for path in guard_homes_text() if os.path.isdir(path)),
    )


def _make_placeholders(level: Level, workspace: str, log_dir: str) -> None:
    for sub in GUARD_LOG_SUBDIRS:
        _make_folder(os.path.join(log_dir, sub))
    register_log_dir(log_dir)  # protected from every other workspace (K9)
    git = os.path.join(workspace, ".git")
    if level != Level.L1 or not _is_real_dir(git):
        return  # L0 writes nothing in the workspace; L2 may write these
    for name in GIT_PLACEHOLDERS:
        try:
            os.mkdir(os.path.join(git, name))
        except FileExistsError:
            continue
        except OSError:
            return  # a read-only .git: nothing can plant there either


def _make_folder(folder: str) -> None:
    """Make a log folder unless it is there (one ``mkdir`` when it is)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        return
    except FileNotFoundError:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise _cannot_create(folder, exc) from exc
    except OSError as exc:  # fail closed, in one line (it was a traceback)
        raise _cannot_create(folder, exc) from exc


def _cannot_create(folder: str, exc: OSError) -> AuditError:
    return AuditError(
        f"cannot create {folder}: {exc.strerror or exc}",
        hint="check that the log directory is writable and not full",
    )


def _is_real_dir(path: str) -> bool:
    """A directory, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
