"""Session ids in the StateTrace form ``YYYY-MM-DD_session-NNNN``.

A new id is the next free number for the day among the session logs under
``<log-dir>/Sessions``; it is claimed by creating the log's lock file
(``<id>.jsonl.lock``) with O_EXCL, so two guards started at once can never
take the same id. The log itself appears only with its header in it (see
:mod:`statetrace_guard.audit.log`): a full disk never leaves an empty one.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from statetrace_guard.errors import AuditError, UsageError

__all__ = ["SESSION_ID_PATTERN", "allocate_session_id", "check_session_id"]

SESSION_ID_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}_session-\d{4,}$")
_MAX_TRIES = 100
# The last number this process claimed per (directory, day). Listing the
# directory costs ~1 ms once it holds a few hundred logs; a process that
# allocates again (the resident helper) starts from here, and O_EXCL still
# decides: a number another guard took is skipped.
_LAST_CLAIMED: dict[tuple[str, str], int] = {}


def check_session_id(text: str) -> str:
    """Return ``text`` if it is a valid session id; raise UsageError if not."""
    if not SESSION_ID_PATTERN.fullmatch(text):
        raise UsageError(
            f"invalid session id {text!r}",
            hint="session ids look like 2026-01-31_session-0001",
        )
    return text


def allocate_session_id(sessions_dir: Path, today: dt.date | None = None) -> str:
    """Create the next free session log file for today and return its id.

    Raises:
        AuditError: the directory cannot be created or written.
    """
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    try:
        sessions_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(f"cannot create {sessions_dir}: {exc.strerror}") from exc
    key = (str(sessions_dir), day)
    number = _LAST_CLAIMED.get(key)
    if number is None:
        number = _highest_number(sessions_dir, day)
    for _ in range(_MAX_TRIES):
        number += 1
        session_id = f"{day}_session-{number:04d}"
        if _claim(sessions_dir / f"{session_id}.jsonl.lock"):
            _LAST_CLAIMED[key] = number
            return session_id
        # Taken by another guard: jump past everything there, not one by one.
        number = max(number, _highest_number(sessions_dir, day))
    raise AuditError(f"no free session id for {day} in {sessions_dir}")


def _highest_number(sessions_dir: Path, day: str) -> int:
    prefix = f"{day}_session-"
    stems = (
        entry.name[len(prefix) :].split(".", 1)[0]
        for entry in sessions_dir.iterdir()
        if entry.name.startswith(prefix)
    )
    numbers = [int(stem) for stem in stems if stem.isdigit()]
    return max(numbers, default=0)


def _claim(path: Path) -> bool:
    if path.with_suffix("").exists():
        return False  # a log from before ids were claimed by their lock
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise AuditError(f"cannot create {path}: {exc.strerror}") from exc
    os.close(descriptor)
    return True
