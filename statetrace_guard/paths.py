r"""Where things live: the workspace root, the log directory, guard's own home.

Guard's home holds what guarded programs must never write: the redaction key
and the approval store. It is ``$STATETRACE_GUARD_HOME`` when set, else
``$XDG_STATE_HOME/statetrace-guard``, else ``~/.local/state/statetrace-guard``
(``%LOCALAPPDATA%\statetrace-guard`` on Windows). It sits outside every
workspace, so the kernel sandbox never grants it.
"""

from __future__ import annotations

import os
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


def temp_dirs() -> tuple[str, ...]:
    """The temporary directories L1 may write, resolved, the system one first.

    One list for the classifier (a write there is not outside) and the
    kernel (each existing one is granted): they must agree.
    """
    rooms = (tempfile.gettempdir(), *_TEMP_ROOMS)
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
    owned = [log_dir.resolve() / sub for sub in GUARD_LOG_SUBDIRS]
    owned.append(guard_home())
    if policy_file is not None:
        owned.append(policy_file.resolve())
    return tuple(owned)


def guard_runtime() -> tuple[str, ...]:
    """Where guard's own code and interpreter live, resolved (present ones).

    Guard's package, every ``site-packages`` on its path (a ``.pth`` file
    there runs at every interpreter start) and its environment's scripts
    (``bin/guard``) and ``pyvenv.cfg``. A program that wrote any of them
    would run its code as the next ``guard`` outside every sandbox: guard
    installed in the project's own virtual environment inside the workspace
    made that an L1 write.
    """
    prefix = Path(sys.prefix)
    candidates = [
        Path(__file__).resolve().parent,  # the statetrace_guard package
        *(Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages"))),
        prefix / "bin",
        prefix / "Scripts",
        prefix / "pyvenv.cfg",
    ]
    return tuple(
        dict.fromkeys(os.path.realpath(p) for p in candidates if os.path.lexists(p))
    )
