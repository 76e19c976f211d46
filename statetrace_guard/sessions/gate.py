"""What ``guard run`` asks a session before and after each command.

``join_session`` resolves the session a run belongs to (its level, raised by
an approval in force; tasks; plan). ``admit`` is asked before an allowed
command runs and returns a reason to block it (a budget reached, the session
halted, the approval used up or out of its hosts); the caller holds the
session log's lock from ``admit`` until its ``command.started`` is written,
so concurrent runs cannot all pass one budget. ``note_outcome`` is
called after the command's own record is written (``command.finished``, or
``command.blocked`` with ``outcome`` None) and returns the events to append
to the session log with ``Trail.event``: ``session.denial``,
``session.halted``, ``session.override`` and ``approval.used``. The events
that follow a finish are split in two: ``run_events`` (known before the
command runs, written under the finish's own lock by whoever writes the
finish) and ``budget_events`` (read from the log after it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from statetrace_guard.audit.chain import rfc3339_ms
from statetrace_guard.decision import Verdict
from statetrace_guard.errors import SessionError
from statetrace_guard.levels import Effect, Level
from statetrace_guard.online.hosts import parse_pattern, url_host_port
from statetrace_guard.policy import CompiledPolicy, Settings
from statetrace_guard.sessions.approvals import Grant, load_book
from statetrace_guard.sessions.loops import detect_loop, intent_of
from statetrace_guard.sessions.overrides import find_parameters, find_variables
from statetrace_guard.sessions.store import (
    EVENT_APPROVAL_USED,
    EVENT_DENIAL,
    EVENT_HALTED,
    EVENT_OVERRIDE,
    Denial,
    SessionState,
    StartInfo,
    load_session,
    parse_ts,
)

__all__ = [
    "RESUME_HINT",
    "Event",
    "SessionContext",
    "admit",
    "budget_events",
    "budget_reason",
    "effective_grant",
    "join_session",
    "note_outcome",
    "run_events",
]

Event = tuple[str, dict[str, Any]]
RESUME_HINT = "the operator must run `guard session resume`"


@dataclass(frozen=True)
class SessionContext:
    """What a guard run inherits from its session."""

    session_id: str
    level: Level
    task_ids: tuple[str, ...]
    plan: str | None
    approval_id: str | None
    managed: bool
    base_level: Level = Level.L1
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def effective_grant(state: SessionState, now: datetime) -> Grant | None:
    """The approval in force for a managed session, if any."""
    if state.start is None or state.start.workspace is None:
        return None
    book = load_book(Path(state.start.workspace))
    return book.in_force(state.session_id, now, state.approval_uses)


def join_session(
    log_dir: Path,
    session_id: str,
    requested_level: Level | None,
    env: Mapping[str, str],
    now: datetime | None = None,
) -> SessionContext:
    """Resolve the session a ``guard run`` joins.

    A requested level above what the session is approved for does not raise
    it; a lower one is honoured. ``env`` gives the override variables seen.

    Raises:
        SessionError: the session does not exist or has ended.
    """
    state = load_session(log_dir, session_id, details=False)
    if not state.exists:
        raise SessionError(f"session {session_id} does not exist")
    if state.end is not None:
        raise SessionError(f"session {session_id} has ended")
    if state.start is None:  # ad hoc: a plain `guard run` created it
        level = requested_level if requested_level is not None else Level.L1
        return SessionContext(
            session_id,
            level,
            (),
            None,
            None,
            managed=False,
            base_level=level,
            env=dict(env),
        )
    return _managed(state, state.start, requested_level, env, _now(now))


def _managed(
    state: SessionState,
    start: StartInfo,
    requested_level: Level | None,
    env: Mapping[str, str],
    now: datetime,
) -> SessionContext:
    """The context of a started session: its level raised by an approval."""
    base = Level.parse(start.level)
    grant = effective_grant(state, now)
    allowed = max(base, grant.level) if grant is not None else base
    level = allowed if requested_level is None else min(requested_level, allowed)
    return SessionContext(
        session_id=state.session_id,
        level=level,
        task_ids=start.task_ids,
        plan=start.plan,
        approval_id=grant.request_id if grant is not None and level > base else None,
        managed=True,
        base_level=base,
        env=dict(env),
    )


def budget_reason(state: SessionState, settings: Settings, now: datetime) -> str | None:
    """Say which budget the session has reached since its window opened."""
    if settings.max_commands is not None and state.runs_since >= settings.max_commands:
        return f"max_commands ({settings.max_commands}) reached"
    if settings.max_blocked is not None and state.blocked_since >= settings.max_blocked:
        return f"max_blocked ({settings.max_blocked}) reached"
    if settings.max_duration_minutes is not None and state.window_start:
        limit = timedelta(minutes=settings.max_duration_minutes)
        if now - parse_ts(state.window_start) >= limit:
            return f"max_duration ({settings.max_duration_minutes:g} minutes) reached"
    return None


def _needs_approval(ctx: SessionContext, verdict: Verdict) -> bool:
    required = verdict.required_level
    return required is not None and required > ctx.base_level


def _hosts(verdict: Verdict) -> set[tuple[str, int | None]] | None:
    """The hosts (and ports) a network command names; None when one is unknown."""
    hosts: set[tuple[str, int | None]] = set()
    for item in verdict.commands:
        if Effect.NETWORK not in item.effects:
            continue
        if not item.command.urls:
            return None
        for url in item.command.urls:
            found = url_host_port(url)
            if found is None:
                return None
            hosts.add(found)
    return hosts


def _host_allowed(host: tuple[str, int | None], allowed: tuple[str, ...]) -> bool:
    name, port = host
    return any(parse_pattern(p, with_port=True).matches(name, port) for p in allowed)


def _approval_reason(
    ctx: SessionContext, state: SessionState, verdict: Verdict, now: datetime
) -> str | None:
    if ctx.approval_id is None or not _needs_approval(ctx, verdict):
        return None
    grant = effective_grant(state, now)
    if grant is None or grant.request_id != ctx.approval_id:
        return f"approval {ctx.approval_id} is no longer in force"
    if not grant.hosts or Effect.NETWORK not in verdict.effects:
        return None
    hosts = _hosts(verdict)
    if hosts is None:
        return f"approval {grant.request_id} is limited to hosts and one is unknown"
    outside = sorted(
        host for host, port in hosts if not _host_allowed((host, port), grant.hosts)
    )
    if outside:
        return f"approval {grant.request_id} does not cover {', '.join(outside)}"
    return None


def admit(
    ctx: SessionContext,
    log_dir: Path,
    policy: CompiledPolicy,
    verdict: Verdict,
    now: datetime | None = None,
) -> str | None:
    """Return a reason to block an allowed command, or None to run it."""
    moment = _now(now)
    state = load_session(log_dir, ctx.session_id, details=False)
    if state.halt is not None:
        return (
            f"session {ctx.session_id} is halted ({state.halt.reason}); {RESUME_HINT}"
        )
    budget = budget_reason(state, policy.settings, moment)
    if budget is not None:
        return f"session {ctx.session_id}: {budget}; {RESUME_HINT}"
    return _approval_reason(ctx, state, verdict, moment)


def _denial_events(
    state: SessionState, settings: Settings, verdict: Verdict, moment: datetime
) -> list[Event]:
    denial = Denial(rfc3339_ms(moment), intent_of(verdict), _texts(verdict))
    events: list[Event] = [
        (EVENT_DENIAL, {"intent": list(denial.intent), "argv": list(denial.argv)})
    ]
    loop = detect_loop(state.denials_since, denial, settings.max_retries_of_blocked)
    if loop is not None and state.halt is None:
        attempts = [{"ts": a.ts, "argv": list(a.argv)} for a in loop.attempts]
        events.append(
            (
                EVENT_HALTED,
                {
                    "kind": "denial_loop",
                    "reason": loop.reason(settings.max_retries_of_blocked),
                    "intent": list(loop.intent),
                    "attempts": attempts,
                },
            )
        )
    return events


def _texts(verdict: Verdict) -> tuple[str, ...]:
    """Each simple command of a verdict as one line of text."""
    return tuple(" ".join(item.command.argv) for item in verdict.commands)


def run_events(
    ctx: SessionContext, settings: Settings, verdict: Verdict
) -> list[Event]:
    """The events after an allowed command's finish that the run itself decides.

    ``session.override`` (overrides it carried) and ``approval.used``: both
    known before it runs.
    """
    events: list[Event] = []
    params = tuple(
        found
        for item in verdict.commands
        for found in find_parameters(item.command.argv, settings.override_parameters)
    )
    variables = find_variables(ctx.env, settings.override_variables)
    if params or variables:
        events.append(
            (
                EVENT_OVERRIDE,
                {
                    "argv": list(_texts(verdict)),
                    "parameters": dict(params),
                    "variables": dict(variables),
                },
            )
        )
    if ctx.approval_id is not None and _needs_approval(ctx, verdict):
        events.append(
            (
                EVENT_APPROVAL_USED,
                {
                    "approval_id": ctx.approval_id,
                    "level": ctx.level.name,
                    "argv": list(_texts(verdict)),
                },
            )
        )
    return events


def note_outcome(
    ctx: SessionContext,
    log_dir: Path,
    policy: CompiledPolicy,
    verdict: Verdict,
    outcome: Mapping[str, Any] | None,
    now: datetime | None = None,
) -> list[Event]:
    """Return the session events that follow a command's own record.

    Call it after ``command.finished`` (or ``command.blocked``, with
    ``outcome`` None) is written, so the log already counts the command.
    """
    moment = _now(now)
    settings = policy.settings
    state = load_session(log_dir, ctx.session_id, details=False)
    events: list[Event] = []
    if outcome is None and not verdict.allowed:
        events.extend(_denial_events(state, settings, verdict, moment))
    elif outcome is not None:
        events.extend(run_events(ctx, settings, verdict))
    halted = state.halt is not None or any(name == EVENT_HALTED for name, _ in events)
    if not halted:
        events.extend(_budget_halt(state, settings, moment))
    return events


def budget_events(
    ctx: SessionContext,
    log_dir: Path,
    policy: CompiledPolicy,
    now: datetime | None = None,
) -> list[Event]:
    """``session.halted`` when a finish has just used up a budget."""
    state = load_session(log_dir, ctx.session_id, details=False)
    if state.halt is not None:
        return []
    return _budget_halt(state, policy.settings, _now(now))


def _budget_halt(
    state: SessionState, settings: Settings, moment: datetime
) -> list[Event]:
    budget = budget_reason(state, settings, moment)
    if budget is None:
        return []
    kind = budget.split(" ", 1)[0]
    return [(EVENT_HALTED, {"kind": kind, "reason": budget})]
