"""``guard jobs``: list and stop a session's jobs (``guard run --background``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from statetrace_guard.cli.common import run_errors
from statetrace_guard.errors import UsageError
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.jobs import find_job, job_lines, list_jobs, log_tail, stop_job
from statetrace_guard.sessions.lifecycle import SESSION_VARIABLE, resolve_session_id

__all__ = ["jobs"]

_session = click.option(
    "--session",
    "session_id",
    default=None,
    help=f"Session id [default: ${SESSION_VARIABLE}].",
)
_log_dir = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Log directory [default: Logs/ under the workspace root].",
)


@click.group(invoke_without_command=True)
@_session
@_log_dir
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@click.pass_context
@run_errors
def jobs(
    ctx: click.Context, session_id: str | None, log_dir: Path | None, *, as_json: bool
) -> None:
    """List the session's jobs: id, command, level, pid, started, status."""
    if ctx.invoked_subcommand is not None:
        return
    invocation = resolve_invocation(level=None, policy=None, log_dir=log_dir)
    session = resolve_session_id(session_id, invocation.env)
    found = list_jobs(invocation.log_dir, session)
    if as_json:
        for job in found:
            click.echo(json.dumps(job.as_dict(), sort_keys=True))
        return
    for line in job_lines(found):
        click.echo(line)


@jobs.command()
@click.argument("job_id")
@_session
@_log_dir
@click.pass_context
@run_errors
def stop(
    ctx: click.Context, job_id: str, session_id: str | None, log_dir: Path | None
) -> None:
    """Stop job JOB_ID (SIGTERM to its tree, SIGKILL after the grace period)."""
    session_id, log_dir = _from_group(ctx, session_id, log_dir)
    invocation = resolve_invocation(level=None, policy=None, log_dir=log_dir)
    session = resolve_session_id(session_id, invocation.env)
    job = find_job(invocation.log_dir, session, job_id)
    if job is None:
        raise UsageError(f"no job {job_id} in session {session}", hint="guard jobs")
    if job.status != "running":
        click.echo(f"guard: job {job.id} is not running ({job.status})", err=True)
        return
    stop_job(job)
    click.echo(f"guard: stopped job {job.id} ({job.command})", err=True)


@jobs.command()
@click.argument("job_id")
@_session
@_log_dir
@click.pass_context
@run_errors
def log(
    ctx: click.Context, job_id: str, session_id: str | None, log_dir: Path | None
) -> None:
    """Print the end of job JOB_ID's output (its last 64 KiB)."""
    session_id, log_dir = _from_group(ctx, session_id, log_dir)
    invocation = resolve_invocation(level=None, policy=None, log_dir=log_dir)
    session = resolve_session_id(session_id, invocation.env)
    job = find_job(invocation.log_dir, session, job_id)
    if job is None:
        raise UsageError(f"no job {job_id} in session {session}", hint="guard jobs")
    click.echo(log_tail(job), nl=False)


def _from_group(
    ctx: click.Context, session_id: str | None, log_dir: Path | None
) -> tuple[str | None, Path | None]:
    """``guard jobs --session ID stop J1`` works like ``jobs stop J1 --session ID``."""
    given = ctx.parent.params if ctx.parent is not None else {}
    return session_id or given.get("session_id"), log_dir or given.get("log_dir")
