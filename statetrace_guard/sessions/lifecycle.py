"""Start, inspect, resume and end a session: the records behind the CLI.

Records written to the session log (with ``Trail.event``):

* ``session.started``: ``task_ids``, ``plan``, ``role``, ``level``,
  ``workspace``, ``base_commit``, ``watched`` (path -> sha256 or null),
  ``user``, ``policy_sha256``, ``budgets``;
* ``session.resumed``: ``user``, ``reason``, ``halt`` (what was halted);
* ``session.ended``: ``status``, ``next_step``, ``user``, ``tests``,
  ``test_failures``, ``must_stop``, ``watched_changed``.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from statetrace_guard.audit.completeness import OpenStart, StartTracker, still_running
from statetrace_guard.errors import SessionError, UsageError
from statetrace_guard.jobs import stop_session_jobs
from statetrace_guard.levels import Level
from statetrace_guard.paths import GUARD_LOG_SUBDIRS
from statetrace_guard.policy import CompiledPolicy
from statetrace_guard.session_ids import allocate_session_id, check_session_id
from statetrace_guard.sessions.approvals import Grant, operator_user
from statetrace_guard.sessions.gate import budget_reason, effective_grant
from statetrace_guard.sessions.overrides import (
    Change,
    diff_watched,
    find_variables,
    snapshot_watched,
)
from statetrace_guard.sessions.report import (
    Report,
    base_commit,
    build_report,
    must_stop_reason,
    test_results,
)
from statetrace_guard.sessions.store import (
    EVENT_ENDED,
    EVENT_RESUMED,
    EVENT_STARTED,
    SessionState,
    load_session,
    read_records,
    session_file,
)
from statetrace_guard.sessions.teardown import release_session_network

# How often ``guard session end`` looks whether running commands finished.
_RUNNING_POLL_S = 0.1

__all__ = [
    "SESSION_VARIABLE",
    "TASKBOARD_CSV",
    "TASK_ID_PATTERN",
    "SessionStatus",
    "StartRequest",
    "end_session",
    "open_session",
    "resolve_session_id",
    "resume_session",
    "running_commands",
    "session_status",
    "start_session",
]

SESSION_VARIABLE = "STATETRACE_GUARD_SESSION"
TASK_ID_PATTERN = re.compile(r"^ST-[A-Z0-9]+-\d{3,}$")
TASKBOARD_CSV = Path("docs/taskboard/TaskBoard.csv")


@dataclass(frozen=True, slots=True)
class StartRequest:
    """What ``guard session start`` was asked for."""

    task_ids: tuple[str, ...]
    plan: Path
    level: Level = Level.L1
    role: str | None = None
    require_taskboard: bool = False


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """What ``guard session status`` shows."""

    state: SessionState
    level: Level
    grant: Grant | None
    grant_uses: int
    budget: Mapping[str, str]
    stopped: str | None
    changes: tuple[Change, ...]
    env_overrides: tuple[tuple[str, str], ...]
    tests_run: int = 0
    test_failures: int = 0
    must_stop: str | None = None


def _trail(log_dir: Path, session_id: str, policy: CompiledPolicy) -> Any:  # noqa: ANN401 - Trail, imported lazily
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415 - structlog is heavy

    settings = policy.settings
    return Trail(
        log_dir,
        session_id,
        durable=settings.durable,
        lock_timeout=settings.lock_timeout_seconds,
    )


def _check_tasks(workspace: Path, request: StartRequest) -> None:
    if not request.task_ids:
        raise UsageError("a session needs at least one --task")
    bad = [task for task in request.task_ids if not TASK_ID_PATTERN.match(task)]
    if bad:
        raise UsageError(
            f"not a task board id: {', '.join(bad)}", hint="ids look like ST-A-001"
        )
    if request.require_taskboard:
        known = _taskboard_ids(workspace / TASKBOARD_CSV)
        missing = [task for task in request.task_ids if task not in known]
        if missing:
            raise SessionError(
                f"not on the task board ({TASKBOARD_CSV}): {', '.join(missing)}"
            )


def _taskboard_ids(path: Path) -> set[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return {cell.strip() for row in csv.reader(handle) for cell in row}
    except OSError as exc:
        raise SessionError(
            f"cannot read the task board {path}: {exc.strerror}"
        ) from exc


def _plan_reference(workspace: Path, plan: Path) -> str:
    if not plan.is_file():
        raise SessionError(f"plan file {plan} does not exist")
    resolved = plan.resolve()
    try:
        return resolved.relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def start_session(
    workspace: Path, log_dir: Path, policy: CompiledPolicy, request: StartRequest
) -> str:
    """Check the preconditions, allocate an id, write ``session.started``.

    Raises:
        UsageError: a task id is malformed or the level needs an approval.
        SessionError: the plan is missing or a task is not on the board.
        AuditError: the log directory is not writable.
    """
    _check_tasks(workspace, request)
    if request.level > Level.L1:
        raise UsageError(
            f"a session starts at L0 or L1; {request.level.name} needs an approval",
            hint="start at L1, then `guard escalate --to L2 --reason ...`",
        )
    plan = _plan_reference(workspace, request.plan)
    session_id = allocate_session_id(log_dir / "Sessions")
    settings = policy.settings
    _trail(log_dir, session_id, policy).event(
        EVENT_STARTED,
        {
            "task_ids": list(request.task_ids),
            "plan": plan,
            "role": request.role,
            "level": request.level.name,
            "workspace": str(workspace.resolve()),
            "base_commit": base_commit(workspace),
            "watched": snapshot_watched(workspace, settings.watched_files),
            "user": operator_user(),
            "policy_sha256": policy.sha256,
            "budgets": _budgets(policy),
        },
    )
    return session_id


def _budgets(policy: CompiledPolicy) -> dict[str, Any]:
    settings = policy.settings
    return {
        "max_commands": settings.max_commands,
        "max_blocked": settings.max_blocked,
        "max_duration_minutes": settings.max_duration_minutes,
        "max_retries_of_blocked": settings.max_retries_of_blocked,
        "max_test_failures": settings.max_test_failures,
    }


def resolve_session_id(option: str | None, env: Mapping[str, str]) -> str:
    """The session named by ``--session``, else ``$STATETRACE_GUARD_SESSION``.

    Raises:
        UsageError: neither names a session, or the id is malformed.
    """
    given = option or env.get(SESSION_VARIABLE)
    if not given:
        raise UsageError(
            "no session given",
            hint=f"pass --session ID or set {SESSION_VARIABLE}",
        )
    return check_session_id(given)


def open_session(log_dir: Path, session_id: str) -> SessionState:
    """Load a session that exists and has not ended.

    Raises:
        SessionError: it does not exist or has ended.
    """
    state = load_session(log_dir, session_id)
    if not state.exists:
        raise SessionError(f"session {session_id} does not exist")
    if state.end is not None:
        raise SessionError(f"session {session_id} has ended")
    return state


def _budget_left(state: SessionState, policy: CompiledPolicy) -> dict[str, str]:
    settings = policy.settings
    left: dict[str, str] = {}
    if settings.max_commands is not None:
        left["commands"] = f"{max(0, settings.max_commands - state.runs_since)} left"
    if settings.max_blocked is not None:
        left["blocked"] = f"{max(0, settings.max_blocked - state.blocked_since)} left"
    if settings.max_duration_minutes is not None:
        # The window opens with the session's first command: none yet, no start.
        since = (
            f"since {state.window_start}"
            if state.window_start is not None
            else "from the first command"
        )
        left["minutes"] = f"{settings.max_duration_minutes:g} {since}"
    return left


def session_status(
    workspace: Path,
    log_dir: Path,
    policy: CompiledPolicy,
    session_id: str,
    env: Mapping[str, str],
    now: datetime | None = None,
) -> SessionStatus:
    """Collect what ``guard session status`` shows.

    Raises:
        SessionError: the session does not exist or has ended.
    """
    moment = now or datetime.now(UTC)
    state = open_session(log_dir, session_id)
    base = Level.parse(state.start.level) if state.start else Level.L1
    grant = effective_grant(state, moment)
    level = max(base, grant.level) if grant else base
    halt = state.halt.reason if state.halt else None
    tests = test_results(state, policy)
    return SessionStatus(
        state=state,
        level=level,
        grant=grant,
        grant_uses=state.approval_uses.get(grant.request_id, 0) if grant else 0,
        budget=_budget_left(state, policy),
        stopped=halt or budget_reason(state, policy.settings, moment),
        changes=_changes(workspace, state, policy),
        env_overrides=find_variables(env, policy.settings.override_variables),
        tests_run=len(tests),
        test_failures=sum(1 for test in tests if test.failed),
        must_stop=must_stop_reason(tests, policy.settings.max_test_failures),
    )


def _changes(
    workspace: Path, state: SessionState, policy: CompiledPolicy
) -> tuple[Change, ...]:
    if state.start is None:
        return ()
    return tuple(
        diff_watched(workspace, state.start.watched, policy.settings.watched_files)
    )


def resume_session(
    log_dir: Path, policy: CompiledPolicy, session_id: str, reason: str
) -> SessionState:
    """Write ``session.resumed``: the budgets count again from now.

    The caller checks that this is an operator action first.

    Raises:
        SessionError: the session does not exist or has ended.
    """
    state = open_session(log_dir, session_id)
    halt = state.halt
    _trail(log_dir, session_id, policy).event(
        EVENT_RESUMED,
        {
            "user": operator_user(),
            "reason": reason,
            "halt": {"kind": halt.kind, "reason": halt.reason} if halt else None,
        },
    )
    return state


def running_commands(
    log_dir: Path,
    session_id: str,
    *,
    wait: float = 0.0,
    own: int | None = None,
) -> list[OpenStart]:
    """The session's commands still running, after waiting up to ``wait`` s.

    ``own`` is the seq of the command the caller itself runs in (a ``guard
    session end`` run by an agent through ``guard run``): never waited for.
    Ending a session while commands run would put their finishes after
    ``session.ended``; waiting a little lets them land first.
    """
    deadline = time.monotonic() + wait
    while True:
        running = [
            start
            for start in _open_starts(log_dir, session_id)
            if start.seq != own and still_running(start)
        ]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(_RUNNING_POLL_S)


def _open_starts(log_dir: Path, session_id: str) -> list[OpenStart]:
    tracker = StartTracker()
    for number, record in enumerate(read_records(session_file(log_dir, session_id))):
        tracker.add(number + 1, record)
    return tracker.open


def end_session(
    workspace: Path,
    log_dir: Path,
    policy: CompiledPolicy,
    session_id: str,
    *,
    status: str | None,
    next_step: str | None,
    require_reset: bool = False,
    running: Sequence[int] = (),
) -> Report:
    """Write ``session.ended`` and return the report.

    ``status`` None ends the session with the honest default: ``blocked``
    when it is halted, ``failed`` when the last test run failed or has no
    known result, else ``done``.

    ``running`` lists the seqs of commands still running (see
    :func:`running_commands`): recorded in ``session.ended``, so finishes
    that follow it are expected.

    Raises:
        SessionError: the session does not exist or has ended, or
            ``require_reset`` and a watched file still differs.
        AuditError: the record cannot be written.
    """
    state = open_session(log_dir, session_id)
    stop_session_jobs(log_dir, session_id)  # their records come before the end
    changes = _changes(workspace, state, policy)
    if require_reset and changes:
        names = ", ".join(f"{change.path} ({change.kind})" for change in changes)
        raise SessionError(
            f"overrides not reset: {names}",
            hint="restore the watched files, then end the session again",
        )
    report = build_report(
        state,
        policy,
        workspace=workspace,
        status=status,
        next_step=next_step,
        changes=changes,
        exclude=_log_prefixes(workspace, log_dir),
        log_dir=log_dir,
    )
    _record_end(log_dir, policy, report, running)
    warning = release_session_network(log_dir, session_id)
    if warning is not None:
        print(warning, file=sys.stderr)  # noqa: T201 - the session has ended anyway
    return report


def _log_prefixes(workspace: Path, log_dir: Path) -> tuple[str, ...]:
    """The guard's log subdirectories, relative to the workspace, as prefixes."""
    try:
        relative = log_dir.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return ()
    return tuple(f"{relative}/{sub}/" for sub in GUARD_LOG_SUBDIRS)


def _record_end(
    log_dir: Path, policy: CompiledPolicy, report: Report, running: Sequence[int]
) -> None:
    failures = sum(1 for test in report.tests if test.failed)
    _trail(log_dir, report.session_id, policy).event(
        EVENT_ENDED,
        {
            "status": report.status,
            "status_note": report.status_note,
            "next_step": report.next_step,
            "user": operator_user(),
            "tests": len(report.tests),
            "test_failures": failures,
            "must_stop": report.must_stop,
            "watched_changed": [change.path for change in report.changes],
            "running": list(running),
        },
    )
