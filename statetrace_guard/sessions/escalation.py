"""Escalation requests, from the CLI or from inside ``guard run``.

An agent asks for L2 or L3 with ``guard escalate --to L2 --reason TEXT``.
Run directly, the ``escalate`` subcommand records the request. Run through
``guard run``, the program would be sandboxed away from guard's home, so
``guard run`` recognises the exact form with :func:`parse_escalation` and
records the request itself with :func:`escalate_session` instead of running
anything: asking is harmless, only the operator's answer grants.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from statetrace_guard.errors import SessionError
from statetrace_guard.levels import Level
from statetrace_guard.sessions.approvals import request_escalation
from statetrace_guard.sessions.store import load_session

__all__ = ["EVENT_ESCALATED", "escalate_session", "parse_escalation"]

EVENT_ESCALATED = "session.escalated"

_GUARD_PROGRAMS = frozenset({"guard", "guard.exe"})
_TARGETS = frozenset({"L2", "L3"})


def _options(words: Sequence[str]) -> dict[str, str] | None:
    """Read ``--to X`` / ``--to=X`` and ``--reason Y``; None on anything else."""
    found: dict[str, str] = {}
    index = 0
    while index < len(words):
        name, equals, value = words[index].partition("=")
        if name not in {"--to", "--reason"} or name in found:
            return None
        if not equals:
            index += 1
            if index >= len(words):
                return None
            value = words[index]
        found[name] = value
        index += 1
    return found


def parse_escalation(argv: Sequence[str]) -> tuple[Level, str] | None:
    """Return (level, reason) when argv is exactly a ``guard escalate`` request.

    Only the plain form is recognised (``guard escalate --to L2|L3 --reason
    TEXT``, the program named ``guard`` by name or path); anything else is
    None and goes through classification like any other command.
    """
    if len(argv) < 2 or argv[1] != "escalate":  # noqa: PLR2004 - program + subcommand
        return None
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
    options = _options(argv[2:])
    if program not in _GUARD_PROGRAMS or options is None:
        return None
    target = options.get("--to", "").upper()
    reason = options.get("--reason", "").strip()
    if target not in _TARGETS or not reason:
        return None
    return Level.parse(target), reason


def escalate_session(log_dir: Path, session_id: str, level: Level, reason: str) -> str:
    """Record a pending request for a started, open session; return its id.

    Raises:
        SessionError: the session does not exist, has ended, or was not
            started with ``guard session start``.
        UsageError: the level or reason is not acceptable.
        AuditError: the approval store or the session log cannot be written.
    """
    state = load_session(log_dir, session_id, details=False)
    if not state.exists:
        raise SessionError(f"session {session_id} does not exist")
    if state.end is not None:
        raise SessionError(f"session {session_id} has ended")
    start = state.start
    if start is None or start.workspace is None:
        raise SessionError(
            f"session {session_id} was not started with `guard session start`",
            hint="only a started session (task and plan) can be escalated",
        )
    request_id = request_escalation(
        Path(start.workspace),
        session_id=session_id,
        level=level,
        reason=reason,
        task_ids=start.task_ids,
        plan=start.plan,
    )
    _note_in_session(log_dir, session_id, request_id, level, reason)
    return request_id


def _note_in_session(
    log_dir: Path, session_id: str, request_id: str, level: Level, reason: str
) -> None:
    """Mirror the request in the session log, so the session tells its story."""
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415 - structlog is heavy

    Trail(log_dir, session_id).event(
        EVENT_ESCALATED,
        {"request_id": request_id, "level": level.name, "reason": reason},
    )
