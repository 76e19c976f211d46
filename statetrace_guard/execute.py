"""``guard run``: judge, record, enforce, run, record again.

The order is the product's promise: nothing runs unless it is allowed and
its ``command.started`` record is on disk; a blocked command gets one
``command.blocked`` record and exit 126; the program's own status passes
through. The session's budgets are checked and the start written under the
session log's lock, as one step. Every started command gets exactly one
``command.finished`` naming its start (whoever writes it: the helper, the
client, a later run replaying a finish kept in guard's home). Heavy modules
(the audit trail, the sandbox, the runner) are imported only on the path
that needs them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from statetrace_guard.decision import Verdict
from statetrace_guard.errors import (
    AuditError,
    ExitCode,
    SandboxUnavailable,
    SessionError,
)
from statetrace_guard.evaluate import Judgement, Place, evaluate
from statetrace_guard.invocation import Invocation
from statetrace_guard.levels import (
    OPT_IN_INSTALL,
    OPT_IN_NET,
    Effect,
    Level,
    format_level,
)
from statetrace_guard.paths import temp_dirs
from statetrace_guard.policy import CompiledPolicy, parse_required_level
from statetrace_guard.session_ids import allocate_session_id, check_session_id
from statetrace_guard.sessions.gate import (
    RESUME_HINT,
    Event,
    SessionContext,
    admit,
    budget_events,
    effective_grant,
    join_session,
    note_outcome,
    run_events,
)
from statetrace_guard.sessions.store import EVENT_HALTED, load_session
from statetrace_guard.sweep import START_MARGIN_NS

if TYPE_CHECKING:
    from statetrace_guard.audit.trail import CommandFacts, StartMark, Trail
    from statetrace_guard.online.egress import Egress
    from statetrace_guard.online.plumbing import ProxyProcess
    from statetrace_guard.sandbox.base import SandboxPlan
    from statetrace_guard.sweep import Planted, TreeCache
    from statetrace_guard.testpicker import TestPicker

__all__ = [
    "ACTIVE_VARIABLE",
    "COMMAND_VARIABLE",
    "PARKED_WARNING",
    "SESSION_VARIABLE",
    "Assessed",
    "Blocked",
    "Prepared",
    "RunOptions",
    "answer",
    "assess",
    "block_message",
    "commit",
    "egress_for",
    "finish",
    "guarded_run",
    "judge_command",
    "prepare",
    "run_prepared",
]

SESSION_VARIABLE = "STATETRACE_GUARD_SESSION"
# Set in every guarded program's environment: operator commands refuse to run
# under it (an agent must not approve its own escalation).
ACTIVE_VARIABLE = "STATETRACE_GUARD_ACTIVE"
# The seq of the program's own command.started in its session's log.
COMMAND_VARIABLE = "STATETRACE_GUARD_COMMAND"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The ``guard run`` options beyond those in :class:`Invocation`."""

    argv: tuple[str, ...]
    session: str | None = None
    task: str | None = None
    timeout: float | None = None
    grace: float | None = None
    durable: bool = False
    require_sandbox: bool = False
    max_memory: int | None = None
    max_processes: int | None = None
    # The pid of the guard process the agent started; the resident helper
    # judges on its behalf, and the record must name the agent's guard.
    pid: int | None = None
    via: str = "in-process"
    # Why the resident helper did not serve it, when it tried and could not.
    fallback: str | None = None
    # Start it as a session job (guard run --background, issue 15.4).
    background: bool = False


def block_message(verdict: Verdict, *, managed: bool | None = None) -> str:
    """The lines a blocked command prints on stderr: what, why, and what next."""
    from statetrace_guard.guidance import (  # noqa: PLC0415 - blocked path only
        block_line,
        next_line,
        next_step,
    )

    step = next_step(verdict, managed=managed)
    lines = [block_line(verdict)]
    if step is not None:
        lines.append(next_line(step))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Blocked:
    """A command that will not run: guard's exit status and its one line."""

    exit_status: int
    message: str
    # The judgement that blocked it; None when the session refused to start
    # or the guard served an agent's request (then ``stdout`` is its answer).
    verdict: Verdict | None = None
    stdout: str = ""  # what the guard answers on the program's stdout


@dataclass(frozen=True, slots=True)
class Prepared:
    """An allowed command whose ``command.started`` record is on disk.

    Everything the runner needs, computed once; ``finish`` records the end.
    """

    facts: CommandFacts
    trail: Trail
    session: SessionContext
    verdict: Verdict
    log_dir: str
    policy: CompiledPolicy
    plan: SandboxPlan
    backend: Any
    private_tmp: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    timeout: float | None
    grace: float
    max_memory: int | None
    max_processes: int | None
    allow_background: bool
    start: StartMark | None = None  # where command.started landed
    after_events: tuple[Event, ...] = ()  # written with the finish
    warnings: tuple[str, ...] = ()
    started_at: float = 0.0  # time.monotonic() when the start was recorded
    # For the sweep after the program (statetrace_guard.sweep): the resolved
    # workspace, the wall time the program may first write (ns, with the
    # coarse-clock margin), and guard's files in it that did not exist.
    workspace: str = ""
    started_ns: int = 0
    absent_guard_files: tuple[str, ...] = ()
    # A command with a test part: the test programs whose own exit status
    # the runner learns from the kernel (see statetrace_guard.testpicker).
    watch_tests: TestPicker | None = None


def guarded_run(invocation: Invocation, options: RunOptions) -> int:
    """Judge, record and run one command; return guard's exit status."""
    prepared = prepare(invocation, options)
    if isinstance(prepared, Blocked):
        answer(prepared)
        return prepared.exit_status
    return run_prepared(prepared)[0]


def run_prepared(prepared: Prepared) -> tuple[int, dict[str, Any]]:
    """Run a started command in this process; its status and finished record."""
    from statetrace_guard.runner import RunSpec, run  # noqa: PLC0415 - run path only

    prepared.trail.close()  # no log stays open while the program runs
    for warning in prepared.warnings:
        _say(warning)
    try:
        spec = RunSpec(
            argv=prepared.argv,
            cwd=prepared.cwd,
            env=prepared.env,
            timeout=prepared.timeout,
            grace=prepared.grace,
            max_memory=prepared.max_memory,
            max_processes=prepared.max_processes,
            plan=prepared.plan,
            backend=prepared.backend,
            allow_background=prepared.allow_background,
            watch_tests=prepared.watch_tests,
        )
        proxy = _start_proxy(prepared.plan)
        if proxy is not None:
            spec = replace(spec, helpers=(proxy.pid,))
        try:
            outcome = run(spec)
        finally:
            egress_error = proxy.stop() if proxy is not None else None
        record = outcome.as_record() | {"supervised_by": "client"}
        if egress_error is not None:
            record["egress_error"] = egress_error
        for warning in finish(prepared, record):
            _say(warning)
        return int(outcome.exit_status), record
    finally:
        shutil.rmtree(prepared.private_tmp, ignore_errors=True)


def _start_proxy(plan: SandboxPlan) -> ProxyProcess | None:
    """The L3 egress proxy when the plan asks for it (imported only then)."""
    if plan.enforcement.get("network") != "proxy":
        return None
    from statetrace_guard.online.plumbing import start_for  # noqa: PLC0415

    try:
        return start_for(plan)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot start the egress proxy: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Assessed:
    """A command judged allowed at its session's level; nothing recorded yet.

    ``invocation`` carries the session's level.
    """

    invocation: Invocation
    session: SessionContext
    verdict: Verdict
    trail: Trail
    facts: CommandFacts


Judge = Callable[[Sequence[str], Level, CompiledPolicy, Place], Judgement]


def assess(
    invocation: Invocation,
    options: RunOptions,
    *,
    judge: Judge = evaluate,
    serve: bool = False,
) -> Assessed | Blocked:
    """Judge the command at its session's level; record it only when refused.

    The session decides the level (its approvals raise it, budgets and stop
    conditions block). Returns Blocked (after recording ``command.blocked``)
    when the policy or the session says no. With ``serve`` (``guard run``),
    an agent's request of the guard itself (``guard escalate``, ``guard
    session status``, ``guard approvals --mine``) is answered here: Blocked
    with its exit status and ``stdout``. Agent-runtime hooks call this
    without ``serve`` to answer before anything runs (the request then runs
    through ``guard run``, which serves it); ``prepare`` goes on to the start.
    ``judge`` replaces classification for work the guard does itself
    (``guard fetch``).
    """
    assessed = judge_command(invocation, options, judge=judge, serve=serve)
    if isinstance(assessed, Blocked):
        return assessed
    blocked = _refuse(
        assessed.trail,
        assessed.facts,
        assessed.session,
        assessed.invocation,
        assessed.verdict,
    )
    return assessed if blocked is None else blocked


def judge_command(
    invocation: Invocation,
    options: RunOptions,
    *,
    judge: Judge = evaluate,
    serve: bool = False,
) -> Assessed | Blocked:
    """Judge the command at its session's level; write nothing to its log.

    With ``serve``, an agent's request of the guard itself is answered here,
    as in :func:`assess`.
    The resident helper judges one command at a time, then commits
    concurrently: a commit may wait for a session log's lock.
    """
    session_id = _session_id(invocation, options)
    try:
        session = join_session(
            invocation.log_dir, session_id, invocation.requested_level, invocation.env
        )
    except SessionError as error:
        return Blocked(ExitCode.RUN_BLOCKED, f"guard: blocked: {error.message}")
    invocation = replace(invocation, level=session.level)
    task_id = options.task or (session.task_ids[0] if session.task_ids else None)
    if judge is evaluate:  # the guardrails look at the repository for it
        judgement = evaluate(
            options.argv,
            invocation.level,
            invocation.policy,
            invocation.place,
            invocation.inspector(task_id),
        )
    else:
        judgement = judge(
            options.argv, invocation.level, invocation.policy, invocation.place
        )
    served = _serve_request(invocation, session_id, judgement) if serve else None
    if served is not None:
        return served
    trail = _open_trail(invocation, session_id, options)
    facts = _facts(invocation, options, judgement, session)
    return Assessed(invocation, session, judgement.verdict, trail, facts)


def prepare(
    invocation: Invocation,
    options: RunOptions,
    *,
    judge: Judge = evaluate,
    own_enforcement: Mapping[str, str] | None = None,
) -> Prepared | Blocked:
    """Judge the command and, if allowed, write ``command.started``.

    Returns Blocked as :func:`assess` does. Raises GuardError (exit 125
    under ``run``) when the start cannot be recorded or required enforcement
    is missing: nothing runs then. For work the guard does itself (``guard
    fetch``), ``judge`` replaces classification and ``own_enforcement`` is
    what the record says enforces it (no program, no sandbox plan).
    """
    assessed = judge_command(invocation, options, judge=judge, serve=True)
    if isinstance(assessed, Blocked):
        return assessed
    return commit(assessed, options, own_enforcement=own_enforcement)


def commit(
    assessed: Assessed,
    options: RunOptions,
    *,
    own_enforcement: Mapping[str, str] | None = None,
    planned: Callable[[SandboxPlan, Any], None] | None = None,
) -> Prepared | Blocked:
    """Write a judged command's record: blocked, or admitted and started.

    ``planned`` is told the program's sandbox plan and backend before its
    start is written (the resident helper has the program's init build the
    sandbox meanwhile; nothing runs before the start is on disk).

    Raises:
        GuardError: the start cannot be recorded or required enforcement is
            missing (nothing runs then).
    """
    invocation, session, verdict = (
        assessed.invocation,
        assessed.session,
        assessed.verdict,
    )
    trail, facts = assessed.trail, assessed.facts
    if not verdict.allowed:
        message = block_message(verdict, managed=session.managed)
        return _block(trail, facts, session, invocation, verdict, message)
    private_tmp = _private_tmp()
    try:
        if own_enforcement is None:
            writes = not verdict.effects <= {Effect.READ}
            plan, backend, warnings = _plan(
                invocation, options, private_tmp, writes=writes
            )
            plan = _with_egress(plan, invocation, session, facts, options)
            plan = _with_session_network(plan, invocation, session)
        else:
            plan, backend, warnings = _own_plan(invocation, own_enforcement), None, ()
        if verdict.contained and plan.missing:
            shutil.rmtree(private_tmp, ignore_errors=True)
            return _uncontainable(trail, facts, session, invocation, verdict, plan)
        envelope = plan.as_record() if verdict.contained else None
        if planned is not None and backend is not None:
            planned(plan, backend)
        start = _admit_and_start(assessed, options, plan, envelope)
    except BaseException:
        shutil.rmtree(private_tmp, ignore_errors=True)
        raise
    if isinstance(start, Blocked):
        shutil.rmtree(private_tmp, ignore_errors=True)
        return start
    limits = _rule_limits(verdict)
    settings = invocation.policy.settings
    return Prepared(
        facts=facts,
        trail=trail,
        session=session,
        verdict=verdict,
        log_dir=str(invocation.log_dir),
        policy=invocation.policy,
        plan=plan,
        backend=backend,
        private_tmp=private_tmp,
        argv=options.argv,
        cwd=str(invocation.cwd),
        env=_child_env(invocation.env, session.session_id, private_tmp, plan)
        | {COMMAND_VARIABLE: str(start.seq)},
        timeout=_first(options.timeout, limits.get("timeout")),
        grace=_first(options.grace, settings.grace_seconds) or 0.0,
        max_memory=_first(options.max_memory, limits.get("max_memory")),
        max_processes=_first(options.max_processes, limits.get("max_processes")),
        allow_background=bool(limits.get("background")),
        start=start,
        after_events=tuple(run_events(session, settings, verdict)),
        warnings=warnings,
        started_at=time.monotonic(),
        workspace=str(invocation.workspace),
        started_ns=time.time_ns() - START_MARGIN_NS,
        absent_guard_files=_absent_guard_files(invocation),
        watch_tests=_test_picker(verdict, invocation.policy),
    )


def _test_picker(verdict: Verdict, policy: CompiledPolicy) -> TestPicker | None:
    """The picker for a command a ``test = true`` rule decided, else None.

    Only those commands pay for watching the tree (the socket, the events).
    """
    tests = {rule.id for rule in policy.rules if rule.test}
    if tests.isdisjoint(verdict.rules):
        return None
    from statetrace_guard.testpicker import TestPicker  # noqa: PLC0415 - tests only

    return TestPicker.of(policy)


def _admit_and_start(
    assessed: Assessed,
    options: RunOptions,
    plan: SandboxPlan,
    envelope: Mapping[str, Any] | None,
) -> StartMark | Blocked:
    """Ask the session, then write ``command.started``: one step, under its lock.

    Checked apart, concurrent runs would all see the budget before any of
    them is counted (16 runs against a budget of 20 started 28).
    """
    trail, facts, session = assessed.trail, assessed.facts, assessed.session
    invocation, verdict = assessed.invocation, assessed.verdict
    with trail.session_locked():
        if options.fallback:
            # The helper may have written a start for us and died before it
            # said so: that command never ran (we are about to run it).
            trail.finish_abandoned(facts.pid, options.fallback)
        refusal = admit(session, invocation.log_dir, invocation.policy, verdict)
        if refusal is None:
            return trail.started(facts, plan.enforcement, envelope)
        facts = replace(
            facts,
            decision="block",
            reasons=(*facts.reasons, refusal),
            rules=(*facts.rules, "session"),
        )
        trail.blocked(facts)
    said = _session_events(
        trail, session, invocation.log_dir, invocation.policy, verdict, None
    )
    message = _refusal_message(refusal, verdict, session, invocation.level)
    return Blocked(ExitCode.RUN_BLOCKED, "\n".join([message, *said]), verdict)


def _absent_guard_files(invocation: Invocation) -> tuple[str, ...]:
    """Guard-owned paths inside the workspace that do not exist (its guard.toml)."""
    workspace = str(invocation.workspace) + "/"
    return tuple(
        path
        for path in invocation.place.decide.protected
        if path.startswith(workspace) and not os.path.lexists(path)
    )


def _serve_request(
    invocation: Invocation, session_id: str, judgement: Judgement
) -> Blocked | None:
    """Serve ``guard escalate`` / ``session status`` / ``approvals --mine`` here.

    Bare or inside the script a runtime wraps commands in, these are the
    agent asking the guard, not a program to sandbox (a sandboxed program
    could not reach guard's home); nothing runs and nothing is recorded as
    a command. See :mod:`statetrace_guard.sessions.requests`.
    """
    from statetrace_guard.sessions.requests import (  # noqa: PLC0415 - rare path
        Where,
        find_request,
        serve,
    )

    if not any(
        c.name.lower() in {"guard", "guard.exe"}
        for c in judgement.classification.commands
    ):
        return None
    request = find_request(judgement.classification)
    if request is None:
        return None
    answer = serve(
        request,
        Where(
            workspace=invocation.workspace,
            log_dir=invocation.log_dir,
            policy=invocation.policy,
            session_id=session_id,
            env=invocation.env,
            cwd=invocation.cwd,
            policy_file=invocation.policy_file,
        ),
    )
    return Blocked(answer.exit_status, answer.stderr, stdout=answer.stdout)


def _refuse(
    trail: Trail,
    facts: CommandFacts,
    session: SessionContext,
    invocation: Invocation,
    verdict: Verdict,
) -> Blocked | None:
    """Block what the policy or the session refuses; None lets it run."""
    if not verdict.allowed:
        message = block_message(verdict, managed=session.managed)
        return _block(trail, facts, session, invocation, verdict, message)
    refusal = admit(session, invocation.log_dir, invocation.policy, verdict)
    if refusal is None:
        return None
    facts = replace(
        facts,
        decision="block",
        reasons=(*facts.reasons, refusal),
        rules=(*facts.rules, "session"),
    )
    message = _refusal_message(refusal, verdict, session, invocation.level)
    return _block(trail, facts, session, invocation, verdict, message)


def _refusal_message(
    refusal: str, verdict: Verdict, session: SessionContext, level: Level
) -> str:
    """The block line of a command the session refused, and its next step."""
    from statetrace_guard.guidance import next_line, refusal_step  # noqa: PLC0415

    step = refusal_step(
        refusal, verdict, session.session_id, halted=RESUME_HINT in refusal
    )
    return (
        f"guard: blocked: {refusal}, session is {level.name} (rule session)\n"
        + next_line(step)
    )


def _uncontainable(
    trail: Trail,
    facts: CommandFacts,
    session: SessionContext,
    invocation: Invocation,
    verdict: Verdict,
    plan: SandboxPlan,
) -> Blocked:
    """Fail closed: contained code whose envelope this run cannot fully enforce."""
    gap = ", ".join(plan.missing)
    reason = f"contained execution needs the whole kernel envelope; missing: {gap}"
    facts = replace(
        facts,
        decision="block",
        reasons=(*facts.reasons, reason),
        rules=(*facts.rules, "contained"),
        contained=False,
    )
    from statetrace_guard.guidance import next_line, uncontainable_step  # noqa: PLC0415

    message = (
        f"guard: blocked: {reason}, session is {invocation.level.name} "
        "(rule contained)\n" + next_line(uncontainable_step(gap))
    )
    return _block(trail, facts, session, invocation, verdict, message)


def _block(
    trail: Trail,
    facts: CommandFacts,
    session: SessionContext,
    invocation: Invocation,
    verdict: Verdict,
    message: str,
) -> Blocked:
    """Record ``command.blocked`` and what the session makes of it."""
    trail.blocked(facts)
    said = _session_events(
        trail, session, invocation.log_dir, invocation.policy, verdict, None
    )
    return Blocked(ExitCode.RUN_BLOCKED, "\n".join([message, *said]), verdict)


def _session_events(
    trail: Trail,
    session: SessionContext,
    log_dir: Path,
    policy: CompiledPolicy,
    verdict: Verdict,
    outcome: Mapping[str, Any] | None,
) -> list[str]:
    """Record the session's events; return the lines the agent must see.

    A halt is announced by the very command that trips it.
    """
    events = note_outcome(session, log_dir, policy, verdict, outcome)
    return _write_events(trail, session, events)


def _write_events(
    trail: Trail, session: SessionContext, events: Sequence[Event]
) -> list[str]:
    """Write session events; a halt is announced in the returned lines."""
    said = []
    for event, fields in events:
        trail.event(event, fields)
        if event == EVENT_HALTED:
            said.append(
                f"guard: session halted: {fields.get('reason', 'stopped')}; "
                f"the operator runs guard session resume {session.session_id}"
            )
    return said


PARKED_WARNING = (
    "guard: warning: the log cannot take command.finished now; it is kept in "
    "guard's home and written to the log with the session's next record"
)


def finish(
    prepared: Prepared, outcome: Mapping[str, Any], tree: TreeCache | None = None
) -> list[str]:
    """Sweep, then record ``command.finished`` and the session's events after it.

    The program already ran, so a record that cannot be written only warns:
    the warnings are returned, for whoever holds the agent's stderr.
    ``tree`` is the resident helper's listing cache for this workspace.
    """
    warnings: list[str] = []
    record = dict(outcome)
    planted = _sweep(prepared, tree)
    if planted:
        record["planted"] = [item.as_record() for item in planted]
        warnings.extend(_planted_lines(planted))
    record.setdefault("exit_code", record.get("exit_status"))
    # An outcome nobody measured (a client or supervisor lost) still ends
    # a valid record: the time until the guard learned of it.
    record.setdefault("duration_ms", (time.monotonic() - prepared.started_at) * 1000)
    egress_error = record.get("egress_error")
    if egress_error:
        warnings.extend(_proxy_failure(prepared, str(egress_error)))
    from statetrace_guard.guidance import outcome_lines  # noqa: PLC0415

    warnings += outcome_lines(record)
    try:
        result = prepared.trail.finished(
            prepared.facts, record, prepared.start, prepared.after_events
        )
    except AuditError as error:
        return [
            *warnings,
            f"guard: warning: command.finished not recorded: {error.message}",
        ]
    if result == "parked":
        return [*warnings, PARKED_WARNING]
    if result == "present":
        return warnings
    try:
        warnings += _write_events(
            prepared.trail,
            prepared.session,
            budget_events(prepared.session, Path(prepared.log_dir), prepared.policy),
        )
    except AuditError as error:
        warnings.append(f"guard: warning: session events not recorded: {error.message}")
    return warnings


def _sweep(prepared: Prepared, tree: TreeCache | None) -> list[Planted]:
    """Move away what the program created that may not exist (see sweep.py).

    Only a command that may write anything runs it: one that only reads
    (known programs, nothing dynamic) cannot have created a path.
    """
    if not prepared.workspace or prepared.verdict.effects <= {Effect.READ}:
        return []
    if prepared.plan.level < Level.L1:
        return []  # nothing in the workspace was writable
    from statetrace_guard.paths import guard_home  # noqa: PLC0415
    from statetrace_guard.sweep import sweep  # noqa: PLC0415

    return sweep(
        level=prepared.plan.level,
        workspace=prepared.workspace,
        started_ns=prepared.started_ns,
        patterns=prepared.policy.protect,
        guard_files=prepared.absent_guard_files,
        quarantine=str(guard_home() / "quarantine"),
        cache=tree,
    )


def _planted_lines(planted: list[Planted]) -> list[str]:
    lines = []
    for item in planted:
        where = (
            f"kept in {item.kept_at}"
            if item.kept_at not in {None, "removed"}
            else (item.kept_at or "COULD NOT BE REMOVED")
        )
        lines.append(
            f"guard: removed {item.path}: created by the program, protected "
            f"({item.protected_by}); {where}"
        )
    return lines


def _proxy_failure(prepared: Prepared, error: str) -> list[str]:
    """Record that the egress proxy died while the program ran."""
    from statetrace_guard.audit.netops import proxy_record  # noqa: PLC0415

    try:
        prepared.trail.connection(proxy_record(prepared.facts.fields(), error))
    except AuditError as failure:
        return [f"guard: warning: {error}, not recorded: {failure.message}"]
    return [f"guard: warning: {error}; the program's connections were cut"]


def _plan(
    invocation: Invocation,
    options: RunOptions,
    private_tmp: str,
    *,
    writes: bool = True,
) -> tuple[SandboxPlan, Any, tuple[str, ...]]:
    from statetrace_guard.layout import fs_layout  # noqa: PLC0415
    from statetrace_guard.sandbox import select_backend  # noqa: PLC0415

    backend = select_backend()
    workspace = str(invocation.workspace)
    layout = fs_layout(
        level=invocation.level,
        workspace=workspace,
        log_dir=str(invocation.log_dir),
        private_tmp=private_tmp,
        guard_owned=invocation.place.decide.protected,
        patterns=invocation.policy.protect,
        nested_git=_nested_git(invocation.level, workspace, writes=writes),
    )
    network_open = (
        invocation.level >= Level.L3 and invocation.env.get(OPT_IN_NET) == "1"
    )
    unix_from = parse_required_level(invocation.policy.model.isolation.unix_sockets)
    plan = backend.plan(
        invocation.level,
        network_open,
        layout,
        unix_sockets=unix_from is not None and invocation.level >= unix_from,
    )
    required = options.require_sandbox or invocation.policy.settings.require_sandbox
    if plan.missing and required:
        raise SandboxUnavailable(
            "enforcement required but unavailable: " + ", ".join(plan.missing),
            hint="run `guard doctor` to see what this machine offers",
        )
    warnings = tuple(_gap_line(plan, gap) for gap in plan.missing)
    return plan, backend, warnings


def _nested_git(level: Level, workspace: str, *, writes: bool) -> tuple[str, ...]:
    """Nested repositories to keep read-only: only L1 writes the workspace below L2.

    Found only for a command that may write (the sweep's condition): one that
    only reads cannot change them, and the walk costs on a large tree.
    """
    if level != Level.L1 or not writes:
        return ()
    from statetrace_guard.sweep import nested_repositories  # noqa: PLC0415

    return nested_repositories(workspace)


def _own_plan(invocation: Invocation, enforcement: Mapping[str, str]) -> SandboxPlan:
    """The plan of work the guard does itself: its own code enforces it."""
    from statetrace_guard.sandbox.base import SandboxPlan  # noqa: PLC0415

    return SandboxPlan(
        level=invocation.level,
        network_open=True,
        enforcement=dict(enforcement),
        backend="guard",
    )


def egress_for(prepared: Prepared) -> Egress:
    """The allow-list in force: the policy's entries, narrowed by the approval."""
    return _session_egress(Path(prepared.log_dir), prepared.session, prepared.policy)


def _session_egress(
    log_dir: Path, session: SessionContext, policy: CompiledPolicy
) -> Egress:
    from statetrace_guard.online.egress import Egress  # noqa: PLC0415
    from statetrace_guard.online.hosts import parse_pattern  # noqa: PLC0415

    grant = None
    if session.approval_id is not None:
        state = load_session(log_dir, session.session_id, details=False)
        grant = effective_grant(state, datetime.now(UTC))
    if grant is None or not grant.hosts:
        return Egress(policy.network)
    hosts = tuple(parse_pattern(host, with_port=True) for host in grant.hosts)
    return Egress(policy.network, grant.request_id, hosts)


def _with_egress(
    plan: SandboxPlan,
    invocation: Invocation,
    session: SessionContext,
    facts: CommandFacts,
    options: RunOptions,
) -> SandboxPlan:
    """At L3 through the proxy: the plan carries what the proxy needs (plain data)."""
    if plan.enforcement.get("network") != "proxy":
        return plan
    settings = invocation.policy.settings
    egress = {
        "egress": _session_egress(
            invocation.log_dir, session, invocation.policy
        ).to_wire(),
        "command": facts.fields(),
        "log_dir": str(invocation.log_dir),
        "durable": options.durable or settings.durable,
        "lock_timeout": settings.lock_timeout_seconds,
    }
    return replace(plan, details={**plan.details, "egress": egress})


def _with_session_network(
    plan: SandboxPlan, invocation: Invocation, session: SessionContext
) -> SandboxPlan:
    """Below L3, as root: the program joins its session's network namespace.

    Only a started session has one (``session end`` removes it); a plain
    ``guard run`` makes a session of its own that nothing ends.
    """
    if plan.enforcement.get("network") != "netns" or not session.managed:
        return plan
    if plan.details.get("namespaces") != "root":
        return plan
    from statetrace_guard.home import guard_home_text  # noqa: PLC0415
    from statetrace_guard.sandbox.session_network import (  # noqa: PLC0415
        session_network_path,
    )

    path = session_network_path(
        guard_home_text(), str(invocation.log_dir), session.session_id
    )
    details = {**plan.details, "session_network": path}
    enforcement = {**plan.enforcement, "network_scope": "session"}
    return replace(plan, details=details, enforcement=enforcement)


def _gap_line(plan: SandboxPlan, gap: str) -> str:
    line = f"guard: warning: not enforced here: {gap}"
    if gap == "mounts":
        from statetrace_guard.sandbox.linux import FILE_MODES  # noqa: PLC0415

        line += f" ({FILE_MODES[str(plan.details.get('protect'))]})"
    return line


def _private_tmp() -> str:
    """A per-command temporary directory, mode 0700 (TMPDIR for the program)."""
    from statetrace_guard.sandbox.base import make_private_tmp  # noqa: PLC0415

    return make_private_tmp(temp_dirs()[0])  # the system one, resolved


def _child_env(
    env: Mapping[str, str], session_id: str, private_tmp: str, plan: SandboxPlan
) -> dict[str, str]:
    child = dict(env)
    if plan.enforcement.get("network") == "proxy":
        from statetrace_guard.sandbox.proxy_socket import (  # noqa: PLC0415
            proxy_environment,
        )

        child.update(proxy_environment())
    child[SESSION_VARIABLE] = session_id
    child[ACTIVE_VARIABLE] = "1"
    child["TMPDIR"] = private_tmp
    return child


def _rule_limits(verdict: Verdict) -> dict[str, Any]:
    """The tightest limits the matched rules set; background only if all allow it."""
    rules = [item.matched for item in verdict.commands if item.matched is not None]
    limits: dict[str, Any] = {
        "background": bool(verdict.commands)
        and len(rules) == len(verdict.commands)
        and all(r.background for r in rules)
    }
    for name in ("timeout", "max_memory", "max_processes"):
        values = [
            getattr(rule, name) for rule in rules if getattr(rule, name) is not None
        ]
        if values:
            limits[name] = min(values)
    return limits


T = TypeVar("T")


def _first(*values: T | None) -> T | None:
    return next((value for value in values if value is not None), None)


def answer(blocked: Blocked) -> None:
    """Print what the guard answers instead of running the program."""
    if blocked.stdout:
        sys.stdout.write(blocked.stdout)
        sys.stdout.flush()
    if blocked.message:
        _say(blocked.message)


def _say(line: str) -> None:
    """Write one line of guard's own on stderr (the program owns stdout)."""
    sys.stderr.write(line + "\n")


def _session_id(invocation: Invocation, options: RunOptions) -> str:
    given = options.session or invocation.env.get(SESSION_VARIABLE)
    if given:
        return check_session_id(given)
    return allocate_session_id(invocation.log_dir / "Sessions")


def _open_trail(invocation: Invocation, session_id: str, options: RunOptions) -> Trail:
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415

    settings = invocation.policy.settings
    return Trail(
        invocation.log_dir,
        session_id,
        durable=options.durable or settings.durable,
        lock_timeout=settings.lock_timeout_seconds,
    )


def _facts(
    invocation: Invocation,
    options: RunOptions,
    judgement: Judgement,
    session: SessionContext,
) -> CommandFacts:
    from statetrace_guard.audit.trail import CommandFacts  # noqa: PLC0415

    verdict = judgement.verdict
    task_ids = tuple(
        dict.fromkeys((*session.task_ids, *((options.task,) if options.task else ())))
    )
    return CommandFacts(
        session_id=session.session_id,
        task_id=options.task or (task_ids[0] if task_ids else None),
        level=invocation.level.name,
        argv=options.argv,
        cwd=str(invocation.cwd),
        pid=options.pid or os.getpid(),
        effects=tuple(sorted(effect.value for effect in verdict.effects)),
        decision="allow" if verdict.allowed else "block",
        reasons=verdict.reasons,
        rules=verdict.rules,
        policy_sha256=invocation.policy.sha256,
        network=Effect.NETWORK in verdict.effects,
        urls=tuple(
            dict.fromkeys(url for item in verdict.commands for url in item.command.urls)
        ),
        env=_seen_env(invocation.env),
        required_level=format_level(verdict.required_level)
        if verdict.required_level is not None
        else None,
        task_ids=task_ids,
        plan_refs=(session.plan,) if session.plan else (),
        extra=_extra(options, session, judgement),
        contained=verdict.contained,
    )


def _extra(
    options: RunOptions, session: SessionContext, judgement: Judgement
) -> dict[str, Any]:
    """How it was served, the approval, the network program, the guardrail facts.

    The guardrails' facts are kept so ``guard replay`` can judge them again.
    """
    verdict = judgement.verdict
    extra: dict[str, Any] = {"via": options.via, "approval_id": session.approval_id}
    if options.fallback:
        extra["fallback"] = options.fallback
    network = [c.command for c in verdict.commands if Effect.NETWORK in c.effects]
    if network:
        extra["program"] = network[0].name
    if judgement.guardrails is not None:
        from statetrace_guard.guardrails.facts import (  # noqa: PLC0415 - commits only
            facts_to_json,
        )

        extra["guardrails"] = facts_to_json(judgement.guardrails)
    return extra


def _seen_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """The opt-in variables as seen (None when unset) and STATETRACE_* overrides."""
    seen: dict[str, str | None] = {
        OPT_IN_NET: env.get(OPT_IN_NET),
        OPT_IN_INSTALL: env.get(OPT_IN_INSTALL),
    }
    for name, value in env.items():
        if name.startswith("STATETRACE_") and not name.startswith("STATETRACE_GUARD_"):
            seen.setdefault(name, value)
    return seen
