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
from collections.abc import Callable
from pathlib import Path

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
        temp_dirs=tuple(path for path in temp_dirs() if Path(path).is_dir()),
        runtime=guard_runtime(),
        protected=tuple(path for path in guard_owned if os.path.lexists(path)),
        protected_data=(*expand(workspace, patterns, listdir), *nested_git)
        if level < Level.L2
        else (),
        hidden=tuple(path for path in guard_homes_text() if Path(path).is_dir()),
    )


def _make_placeholders(level: Level, workspace: str, log_dir: str) -> None:
    for sub in GUARD_LOG_SUBDIRS:
        folder = Path(log_dir) / sub
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # fail closed, in one line (it was a traceback)
            raise AuditError(
                f"cannot create {folder}: {exc.strerror or exc}",
                hint="check that the log directory is writable and not full",
            ) from exc
    register_log_dir(log_dir)  # protected from every other workspace (K9)
    git = Path(workspace) / ".git"
    if level != Level.L1 or git.is_symlink() or not git.is_dir():
        return  # L0 writes nothing in the workspace; L2 may write these
    for name in GIT_PLACEHOLDERS:
        try:
            (git / name).mkdir()
        except FileExistsError:
            continue
        except OSError:
            return  # a read-only .git: nothing can plant there either
