r"""Where things live: the workspace root, the log directory, guard's own home.

Guard's home holds what guarded programs must never write: the redaction key
and the approval store. It is ``$STATETRACE_GUARD_HOME`` when set, else
``$XDG_STATE_HOME/statetrace-guard``, else ``~/.local/state/statetrace-guard``
(``%LOCALAPPDATA%\statetrace-guard`` on Windows). It sits outside every
workspace, so the kernel sandbox never grants it.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import tempfile
from pathlib import Path

from statetrace_guard.home import guard_home_text

__all__ = [
    "GUARD_LOG_SUBDIRS",
    "default_log_dir",
    "guard_home",
    "guard_owned_paths",
    "guard_runtime",
    "real_child",
    "temp_dirs",
    "workspace_root",
]

# The parts of the log directory the guard writes; the rest of Logs/ belongs to
# the project (StateTrace's own tools write Logs/Reports, Logs/IngestionMetrics).
GUARD_LOG_SUBDIRS = ("Sessions", "NetOps", "Approvals")

# The machine's shared temporary rooms writable from L1 (with the system
# temporary directory, wherever TMPDIR puts it). /dev/shm holds POSIX
# semaphores (multiprocessing).
_TEMP_ROOMS = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - rooms, not files we create
# Where an interpreter's installed packages are (one of guard's runtime dirs).
_PACKAGE_DIRS = ("site-packages", "dist-packages")


def temp_dirs() -> tuple[str, ...]:
    """The temporary directories L1 may write, resolved, the system one first.

    One list for the classifier (a write there is not outside) and the
    kernel (each existing one is granted): they must agree.
    """
    return _temp_dirs_of(tempfile.gettempdir())


@functools.lru_cache(maxsize=8)
def _temp_dirs_of(system_tmp: str) -> tuple[str, ...]:
    # The machine's rooms, resolved once per process (the helper asks per
    # command); only the system one can differ between callers.
    rooms = (system_tmp, *_TEMP_ROOMS)
    return tuple(dict.fromkeys(os.path.realpath(path) for path in rooms))


def workspace_root(cwd: str | os.PathLike[str]) -> Path:
    """Return the git top level above ``cwd``, else ``cwd`` itself.

    Walks up looking for ``.git`` (a directory, or a file for worktrees)
    instead of running git: this is on the hot path of every command.
    """
    start = Path(cwd).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def default_log_dir(workspace: Path) -> Path:
    """Return ``Logs/`` under the workspace root."""
    return workspace / "Logs"


def guard_home() -> Path:
    """Return guard's private state directory (not created here)."""
    return Path(guard_home_text())


def guard_owned_paths(log_dir: Path, policy_file: Path | None) -> tuple[Path, ...]:
    """Return every path a guarded program must not write, resolved."""
    logs = os.path.realpath(log_dir)
    owned = [Path(real_child(logs, sub)) for sub in GUARD_LOG_SUBDIRS]
    owned.append(guard_home())
    if policy_file is not None:
        owned.append(policy_file.resolve())
    return tuple(owned)


def real_child(real_parent: str, name: str) -> str:
    """``os.path.realpath(real_parent/name)`` for a parent already resolved.

    One ``lstat`` instead of one per component of the parent: the judging
    of every command resolves a dozen such paths. ``name`` is one component
    (not ``..``).
    """
    path = os.path.join(real_parent, name)  # noqa: PTH118 - plain strings per command
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return path
    except OSError:
        return path  # absent: realpath would give the same (its parent is real)
    return os.path.realpath(path)


def guard_runtime() -> tuple[str, ...]:
    """Where guard's own code and interpreter live, resolved (present ones).

    Guard's package, every ``site-packages`` on its path (a ``.pth`` file
    there runs at every interpreter start) and its environment's scripts
    (``bin/guard``) and ``pyvenv.cfg``. A program that wrote any of them
    would run its code as the next ``guard`` outside every sandbox: guard
    installed in the project's own virtual environment inside the workspace
    made that an L1 write.
    """
    return _runtime_of(sys.prefix, tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _runtime_of(prefix_text: str, search_path: tuple[str, ...]) -> tuple[str, ...]:
    # The same for every command a process judges (the helper, many).
    prefix = Path(prefix_text)
    candidates = [
        Path(__file__).resolve().parent,  # the statetrace_guard package
        *(Path(p) for p in search_path if p.endswith(_PACKAGE_DIRS)),
        prefix / "bin",
        prefix / "Scripts",
        prefix / "pyvenv.cfg",
    ]
    return tuple(
        dict.fromkeys(os.path.realpath(p) for p in candidates if os.path.lexists(p))
    )
