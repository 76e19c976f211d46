"""Files an agent runtime writes itself: judged like a shell write, then recorded.

Claude Code's Write/Edit and Codex's apply_patch change files in the
runtime's own process, outside ``guard run`` and its kernel envelope. Such an
edit is judged by the decision layer as a synthetic simple command that writes
exactly those paths (one implementation of "where does this write land":
outside the workspace, guard's own files, the policy, ``.git/hooks``,
``.git/config`` and whatever else the decision layer protects; at L0 the
write effect itself is refused). After the edit, a chained ``file.edited``
record names the tool, each path, its size and the SHA-256 of its new
content (``null`` for a path the edit removed).

Records (``Trail.event``):

* ``file.edited``: ``runtime``, ``tool``, ``tool_use_id``, ``level``,
  ``cwd``, ``paths``, ``files`` (``path``, ``bytes``, ``sha256``),
  ``decision`` (``allow``), ``effects`` (``["write"]``);
* ``file.blocked``: ``runtime``, ``tool``, ``tool_use_id``, ``level``,
  ``cwd``, ``paths``, ``decision`` (``block``), ``reasons``, ``rules``,
  ``required_level``, ``message``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.classify.paths import is_within
from statetrace_guard.decision import Verdict, decide
from statetrace_guard.levels import Effect, Level, format_level

if TYPE_CHECKING:
    from statetrace_guard.audit.trail import Trail
    from statetrace_guard.evaluate import Place
    from statetrace_guard.policy import CompiledPolicy

__all__ = [
    "FILE_BLOCKED",
    "FILE_EDITED",
    "EditSource",
    "FileState",
    "file_state",
    "judge_write",
    "record_blocked",
    "record_edit",
]

FILE_EDITED = "file.edited"
FILE_BLOCKED = "file.blocked"


@dataclass(frozen=True, slots=True)
class EditSource:
    """Who made an edit: the runtime, its tool and the tool call's id."""

    runtime: str
    tool: str
    tool_use_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileState:
    """A path after an edit: its size and content hash (None once removed)."""

    path: str
    bytes: int
    sha256: str | None

    def as_record(self) -> dict[str, Any]:
        """The form in ``file.edited``'s ``files`` list."""
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


def judge_write(
    tool: str,
    paths: Sequence[str],
    level: Level,
    policy: CompiledPolicy,
    place: Place,
) -> Verdict:
    """Decide on a tool writing ``paths`` as on a shell command writing them.

    The synthetic command's name (``tool:write``) matches no policy rule, so
    only the write effect's level and the decision layer's path checks
    decide.
    """
    command = SimpleCommand(
        argv=(tool, *paths),
        shell="exec",
        name=f"tool:{tool.lower()}",
        effects=frozenset({Effect.WRITE}),
        spec=f"tool:{tool}",
        reasons=(f"{tool} writes the file itself, outside guard run",),
        writes=tuple(paths),
    )
    return decide(Classification((command,)), policy, level, place.decide)


def file_state(path: str, cwd: str, workspace: str) -> FileState:
    """Hash a path as it is now; the recorded path is workspace-relative inside it."""
    absolute = str((Path(cwd) / path).resolve())
    shown = (
        os.path.relpath(absolute, workspace)
        if is_within(absolute, workspace)
        else absolute
    )
    try:
        with open(absolute, "rb") as handle:  # noqa: PTH123 - a plain binary read
            digest = hashlib.file_digest(handle, "sha256")
            size = handle.tell()
    except OSError:  # removed (apply_patch delete or move), or unreadable
        return FileState(shown, 0, None)
    return FileState(shown, size, digest.hexdigest())


def record_edit(
    trail: Trail,
    source: EditSource,
    states: Sequence[FileState],
    *,
    level: Level,
    cwd: str,
) -> dict[str, Any]:
    """Append ``file.edited`` to the session log and return the record.

    Raises:
        AuditError: the record cannot be written.
    """
    return trail.event(
        FILE_EDITED,
        {
            **_source_fields(source, level, cwd),
            "paths": [state.path for state in states],
            "files": [state.as_record() for state in states],
            "decision": "allow",
            "effects": [Effect.WRITE.value],
        },
    )


def record_blocked(
    trail: Trail,
    source: EditSource,
    paths: Sequence[str],
    verdict: Verdict,
    *,
    message: str,
    cwd: str,
    refusal: str | None = None,
) -> dict[str, Any]:
    """Append ``file.blocked`` (the edit never happened) and return the record.

    ``refusal`` is the session's reason when it, not the verdict, refused.

    Raises:
        AuditError: the record cannot be written.
    """
    required = verdict.required_level
    session = () if refusal is None else (refusal,)
    return trail.event(
        FILE_BLOCKED,
        {
            **_source_fields(source, verdict.level, cwd),
            "paths": list(paths),
            "decision": "block",
            "effects": sorted(effect.value for effect in verdict.effects),
            "reasons": [*verdict.reasons, *session],
            "rules": [*verdict.rules, *(("session",) if session else ())],
            "required_level": None if required is None else format_level(required),
            "message": message,
        },
    )


def _source_fields(source: EditSource, level: Level, cwd: str) -> dict[str, Any]:
    return {
        "runtime": source.runtime,
        "tool": source.tool,
        "tool_use_id": source.tool_use_id,
        "level": level.name,
        "cwd": cwd,
    }
