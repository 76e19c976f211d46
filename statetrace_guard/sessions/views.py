"""How sessions and approvals are shown: shared by the CLI and the guard itself.

``guard session status`` and ``guard approvals`` print these; so does
``guard run`` when it serves the same requests for an agent from inside a
guarded script (see :mod:`statetrace_guard.sessions.requests`).
"""

from __future__ import annotations

from statetrace_guard.sessions.approvals import ApprovalBook
from statetrace_guard.sessions.lifecycle import SessionStatus

__all__ = ["approval_line", "approval_rows", "status_json", "status_lines"]


def status_lines(status: SessionStatus) -> list[str]:
    """What ``guard session status`` prints, line by line."""
    state = status.state
    start = state.start
    grant = status.grant
    approval = "none"
    if grant is not None:
        limit = grant.max_commands if grant.max_commands is not None else "-"
        approval = (
            f"{grant.request_id} {grant.level.name} until "
            f"{grant.expires_at or 'session end'}, used {status.grant_uses}/{limit}"
        )
    budget = ", ".join(f"{k} {v}" for k, v in status.budget.items()) or "none"
    changes = [f"{c.path} ({c.kind})" for c in status.changes]
    variables = [name for name, _ in status.env_overrides]
    return [
        f"session:   {state.session_id}"
        + ("" if start else " (ad hoc: not started with `guard session start`)"),
        f"tasks:     {', '.join(start.task_ids) if start else '-'}",
        f"plan:      {start.plan if start and start.plan else '-'}",
        f"level:     {status.level.name}",
        f"approval:  {approval}",
        f"commands:  {state.runs_total} run, {state.blocked_total} blocked",
        f"budget:    {budget}",
        f"tests:     {status.tests_run} run, {status.test_failures} failed"
        + (f"; MUST STOP: {status.must_stop}" if status.must_stop else ""),
        f"stopped:   {status.stopped or 'no'}",
        f"overrides: {', '.join(changes + variables) or 'none outstanding'}",
    ]


def status_json(status: SessionStatus) -> dict[str, object]:
    """What ``guard session status --json`` prints."""
    state = status.state
    return {
        "schema_version": 1,
        "session_id": state.session_id,
        "managed": state.managed,
        "level": status.level.name,
        "approval": status.grant.request_id if status.grant else None,
        "commands_run": state.runs_total,
        "commands_blocked": state.blocked_total,
        "budget": dict(status.budget),
        "stopped": status.stopped,
        "tests_run": status.tests_run,
        "test_failures": status.test_failures,
        "must_stop": status.must_stop,
        "watched_changed": [change.path for change in status.changes],
        "override_variables": [name for name, _ in status.env_overrides],
    }


def approval_rows(
    book: ApprovalBook, pending_only: bool, session_id: str | None = None
) -> list[dict[str, object]]:
    """The requests ``guard approvals`` lists (one session's with ``session_id``)."""
    rows: list[dict[str, object]] = []
    for request in book.requests.values():
        status = book.status(request.request_id)
        if pending_only and status != "pending":
            continue
        if session_id is not None and request.session_id != session_id:
            continue
        grant = book.grants.get(request.request_id)
        rows.append(
            {
                "request_id": request.request_id,
                "status": status,
                "session_id": request.session_id,
                "level": request.level.name,
                "reason": request.reason,
                "requested_by": request.user,
                "requested_at": request.ts,
                "approved_by": grant.user if grant else None,
                "expires_at": grant.expires_at if grant else None,
                "max_commands": grant.max_commands if grant else None,
                "hosts": list(grant.hosts) if grant else [],
            }
        )
    return rows


def approval_line(row: dict[str, object]) -> str:
    """One request as ``guard approvals`` prints it."""
    return (
        f"{row['request_id']}  {row['status']:<8} {row['level']}  "
        f"{row['session_id']}  {row['reason']}"
    )
