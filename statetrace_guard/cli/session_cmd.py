"""``guard session start|status|end|resume``: a thin layer over sessions/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, log_dir_option, policy_option
from statetrace_guard.errors import AuditError
from statetrace_guard.execute import COMMAND_VARIABLE
from statetrace_guard.invocation import Invocation, resolve_invocation
from statetrace_guard.levels import Level
from statetrace_guard.sessions.lifecycle import (
    SESSION_VARIABLE,
    StartRequest,
    end_session,
    resolve_session_id,
    resume_session,
    running_commands,
    session_status,
    start_session,
)
from statetrace_guard.sessions.operator import require_operator
from statetrace_guard.sessions.report import render_cli, render_markdown
from statetrace_guard.sessions.views import status_json, status_lines

__all__ = ["session"]

_END_WAIT_S = 10.0  # how long `session end` waits for running commands

session_option = click.option(
    "--session",
    "session_id",
    default=None,
    help=f"Session id [default: ${SESSION_VARIABLE}].",
)


def _invocation(policy: Path | None, log_dir: Path | None) -> Invocation:
    return resolve_invocation(level=None, policy=policy, log_dir=log_dir)


@click.group()
def session() -> None:
    """Start, inspect, resume and end an agent session."""


def _stop_jobs(log_dir: Path, session_id: str) -> None:
    """End the session's jobs first: their finishes come before session.ended."""
    from statetrace_guard.jobs import stop_session_jobs  # noqa: PLC0415

    for job in stop_session_jobs(log_dir, session_id):
        click.echo(f"guard: stopped job {job.id} ({job.command})", err=True)


@session.command()
@click.option(
    "--task", "tasks", multiple=True, required=True, help="Task id, e.g. ST-A-001."
)
@click.option(
    "--plan",
    type=click.Path(path_type=Path),
    required=True,
    help="Plan file, e.g. docs/plans/PlanA_Routing.md.",
)
@click.option(
    "--level",
    type=click.Choice(["L0", "L1"], case_sensitive=False),
    default="L1",
    show_default=True,
    help="Starting level; L2 and L3 need `guard escalate`.",
)
@click.option("--role", default=None, help="The agent's role, for the session log.")
@click.option(
    "--require-taskboard", is_flag=True, help="Each task must be on the task board."
)
@click.option(
    "--shell",
    type=click.Choice(["sh", "pwsh"]),
    default="sh",
    show_default=True,
    help="Form of the printed export line.",
)
@policy_option
@log_dir_option
@guard_errors
def start(
    tasks: tuple[str, ...],
    plan: Path,
    level: str,
    role: str | None,
    require_taskboard: bool,
    shell: str,
    policy: Path | None,
    log_dir: Path | None,
) -> None:
    """Check the preconditions and start a session; print its id and export line."""
    invocation = _invocation(policy, log_dir)
    request = StartRequest(
        task_ids=tasks,
        plan=plan,
        level=Level.parse(level),
        role=role,
        require_taskboard=require_taskboard,
    )
    session_id = start_session(
        invocation.workspace, invocation.log_dir, invocation.policy, request
    )
    click.echo(session_id)
    if shell == "pwsh":
        click.echo(f'$env:{SESSION_VARIABLE} = "{session_id}"')
    else:
        click.echo(f"export {SESSION_VARIABLE}={session_id}")


@session.command()
@session_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@policy_option
@log_dir_option
@guard_errors
def status(
    session_id: str | None, as_json: bool, policy: Path | None, log_dir: Path | None
) -> None:
    """Show the session's level, approvals, counts, budget and overrides."""
    invocation = _invocation(policy, log_dir)
    found = session_status(
        invocation.workspace,
        invocation.log_dir,
        invocation.policy,
        resolve_session_id(session_id, invocation.env),
        invocation.env,
    )
    if as_json:
        click.echo(json.dumps(status_json(found), sort_keys=True))
    else:
        click.echo("\n".join(status_lines(found)))


@session.command()
@session_option
@click.option(
    "--status",
    "outcome",
    type=click.Choice(["done", "blocked", "failed"]),
    default=None,
    help="The task board status to report [default: blocked when the session "
    "is halted, failed when the last test run failed or has no known result, "
    "else done].",
)
@click.option("--next", "next_step", default=None, help="The next step to report.")
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the session log in the StateTrace template.",
)
@click.option(
    "--require-reset", is_flag=True, help="Fail (exit 1) while a watched file differs."
)
@policy_option
@log_dir_option
@guard_errors
def end(
    session_id: str | None,
    outcome: str | None,
    next_step: str | None,
    markdown: Path | None,
    require_reset: bool,
    policy: Path | None,
    log_dir: Path | None,
) -> None:
    """End the session and print the report (PATCH SUMMARY ... NEXT STEP).

    Without --status the session ends blocked or failed when it is halted or
    its last test run did not pass, and says so; --status done overrides.

    Commands of the session still running are waited for (up to 10 s) so
    that their finishes come before ``session.ended``; any left are named in
    a warning and in the record.
    """
    invocation = _invocation(policy, log_dir)
    session = resolve_session_id(session_id, invocation.env)
    own = invocation.env.get(COMMAND_VARIABLE)
    _stop_jobs(invocation.log_dir, session)
    running = running_commands(
        invocation.log_dir,
        session,
        wait=_END_WAIT_S,
        own=int(own) if own and own.isdigit() else None,
    )
    if running:
        seqs = ", ".join(str(start.seq) for start in running)
        click.echo(
            f"guard: warning: {len(running)} command(s) of the session still "
            f"running (seq {seqs}): their command.finished will follow "
            "session.ended",
            err=True,
        )
    report = end_session(
        invocation.workspace,
        invocation.log_dir,
        invocation.policy,
        session,
        status=outcome,
        next_step=next_step,
        require_reset=require_reset,
        running=[start.seq for start in running],
    )
    click.echo(render_cli(report), nl=False)
    if outcome is None and report.status_note:
        click.echo(
            f"guard: status {report.status}: {report.status_note}; "
            "end with --status done to report it done",
            err=True,
        )
    if markdown is not None:
        try:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(render_markdown(report), encoding="utf-8")
        except OSError as exc:
            raise AuditError(f"cannot write {markdown}: {exc.strerror}") from exc


@session.command()
@session_option
@click.option("--reason", default="", help="Why the operator resumes the session.")
@policy_option
@log_dir_option
@guard_errors
def resume(
    session_id: str | None, reason: str, policy: Path | None, log_dir: Path | None
) -> None:
    """Resume a halted session (operator only): budgets count again from now."""
    require_operator("guard session resume", os.environ)
    invocation = _invocation(policy, log_dir)
    state = resume_session(
        invocation.log_dir,
        invocation.policy,
        resolve_session_id(session_id, invocation.env),
        reason,
    )
    was = f" (was halted: {state.halt.reason})" if state.halt else ""
    click.echo(f"resumed {state.session_id}{was}")
