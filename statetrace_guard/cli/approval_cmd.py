"""``guard escalate``, ``guard approve``, ``guard deny``, ``guard approvals``.

``escalate`` is the agent's request; ``approve`` and ``deny`` are operator
actions and refuse to run inside a guarded command tree.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, log_dir_option, policy_option
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir
from statetrace_guard.sessions.approvals import (
    deny_request,
    grant_request,
    load_book,
    locate_workspace,
    parse_duration,
)
from statetrace_guard.sessions.escalation import escalate_session
from statetrace_guard.sessions.lifecycle import resolve_session_id, resume_session
from statetrace_guard.sessions.operator import require_operator
from statetrace_guard.sessions.store import load_session
from statetrace_guard.sessions.views import approval_line, approval_rows

__all__ = ["approvals", "approve", "deny", "escalate"]

workspace_option = click.option(
    "--workspace",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The agent's workspace [default: the one around the current directory].",
)


def _workspace(option: Path | None) -> Path:
    """The workspace an operator command acts on (see locate_workspace)."""
    return locate_workspace(option if option is not None else Path.cwd())


@click.command()
@click.option(
    "--to",
    "level",
    type=click.Choice(["L2", "L3"], case_sensitive=False),
    required=True,
    help="The level the session needs.",
)
@click.option("--reason", required=True, help="Why, tied to the plan.")
@click.option("--session", "session_id", default=None, help="Session id.")
@policy_option
@log_dir_option
@guard_errors
def escalate(
    level: str,
    reason: str,
    session_id: str | None,
    policy: Path | None,
    log_dir: Path | None,
) -> None:
    """Ask the operator to raise the current session to L2 or L3."""
    invocation = resolve_invocation(level=None, policy=policy, log_dir=log_dir)
    sid = resolve_session_id(session_id, invocation.env)
    request_id = escalate_session(invocation.log_dir, sid, Level.parse(level), reason)
    click.echo(request_id)
    click.echo(f"pending: the operator runs `guard approve {request_id}`", err=True)


@click.command()
@click.argument("request_id")
@click.option("--expires", default=None, help="Lifetime, e.g. 30m, 2h, 1d.")
@click.option(
    "--max-commands",
    type=click.IntRange(min=1),
    default=None,
    help="Commands the approval covers.",
)
@click.option("--hosts", default=None, help="Comma-separated hosts (L3).")
@click.option(
    "--resume", is_flag=True, help="Also resume the session when it is halted."
)
@workspace_option
@log_dir_option
@guard_errors
def approve(
    request_id: str,
    expires: str | None,
    max_commands: int | None,
    hosts: str | None,
    resume: bool,
    workspace: Path | None,
    log_dir: Path | None,
) -> None:
    """Approve an escalation request (operator only).

    An approval does not resume a halted session; the command says so, and
    --resume does both.
    """
    require_operator("guard approve", os.environ)
    root = _workspace(workspace)
    grant = grant_request(
        root,
        request_id,
        now=datetime.now(UTC),
        expires=parse_duration(expires) if expires else None,
        max_commands=max_commands,
        hosts=tuple(h.strip() for h in (hosts or "").split(",") if h.strip()),
    )
    until = grant.expires_at or "the end of the session"
    click.echo(
        f"approved {grant.request_id}: {grant.session_id} at {grant.level.name} "
        f"until {until}"
    )
    _halted_session(root, log_dir, grant.session_id, request_id, resume=resume)


def _halted_session(
    root: Path, log_dir: Path | None, session_id: str, request_id: str, *, resume: bool
) -> None:
    """Say when the approved session is halted; resume it with --resume."""
    logs = log_dir or default_log_dir(root)
    state = load_session(logs, session_id, details=False)
    if not state.exists or state.halt is None:
        return
    if resume:
        invocation = resolve_invocation(level=None, policy=None, log_dir=logs, cwd=root)
        resume_session(logs, invocation.policy, session_id, f"approved {request_id}")
        click.echo(f"resumed {session_id} (it was halted: {state.halt.reason})")
        return
    click.echo(
        f"note: session {session_id} is halted ({state.halt.reason}); the approval "
        f"does not resume it: guard session resume {session_id} "
        f"(or guard approve ... --resume)",
        err=True,
    )


@click.command()
@click.argument("request_id")
@click.option("--reason", default="", help="Why (recorded).")
@workspace_option
@guard_errors
def deny(request_id: str, reason: str, workspace: Path | None) -> None:
    """Deny a request, or revoke an approval (operator only)."""
    require_operator("guard deny", os.environ)
    status = deny_request(_workspace(workspace), request_id, reason)
    click.echo(f"{status} {request_id}")


@click.command()
@click.option("--pending", is_flag=True, help="Only requests awaiting an answer.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@workspace_option
@guard_errors
def approvals(pending: bool, as_json: bool, workspace: Path | None) -> None:
    """List escalation requests and approvals for this workspace.

    The workspace is the nearest directory around the current one that has
    requests (so any directory inside it works), else the git top level; the
    listing names it.
    """
    where = _workspace(workspace)
    rows = approval_rows(load_book(where), pending)
    if as_json:
        for row in rows:
            payload = {"schema_version": 1, "workspace": str(where), **row}
            click.echo(json.dumps(payload, sort_keys=True))
        return
    kind = "pending requests" if pending else "requests"
    click.echo(
        f"{kind} for workspace {where}:" if rows else f"no {kind} for workspace {where}"
    )
    for row in rows:
        click.echo(approval_line(row))
