"""``guard run --background``: start a command as a session job (issue 15.4).

Always in ``guard run``'s own process, never through the resident helper
(its client hands ``--background`` over): ``guard run`` forks the job's
supervisor, which leaves the caller's session and process group, judges
and records the command exactly as ``guard run`` does (on the caller's
stderr, so a block reads the same), writes ``job.started``, tells
``guard run`` the job's id, then moves its output to the job's log and
runs the program to its end. ``guard run`` prints one line and exits 0;
a blocked or failed start exits with the status ``guard run`` would have.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from statetrace_guard.errors import AuditError, GuardError, UsageError, run_exit_code
from statetrace_guard.execute import (
    SESSION_VARIABLE,
    Assessed,
    Blocked,
    Prepared,
    RunOptions,
    answer,
    assess,
    commit,
    finish,
    run_prepared,
)
from statetrace_guard.jobs import (
    EVENT_JOB_ENDED,
    EVENT_JOB_STARTED,
    Job,
    claim_job,
    forget_job,
    jobs_folder,
    mark_ended,
)
from statetrace_guard.levels import Level
from statetrace_guard.policy import parse_required_level

if TYPE_CHECKING:
    from pathlib import Path

    from statetrace_guard.invocation import Invocation
    from statetrace_guard.sessions.gate import SessionContext

__all__ = ["start_job"]

_RUN_FAILED = 125
_BLOCKED = 126


def start_job(invocation: Invocation, options: RunOptions) -> int:
    """Start the command as a session job; guard run's exit status."""
    if not (options.session or invocation.env.get(SESSION_VARIABLE)):
        raise UsageError(
            "--background needs a started session (session end stops its jobs)",
            hint="guard session start --task ID --plan FILE, then --session ID",
        )
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the job's supervisor; tested end to end
        os.close(read)
        status = _RUN_FAILED
        try:
            os.setsid()
            status = _supervise(invocation, options, write)
        except GuardError as exc:
            hint = exc.hint()
            sys.stderr.write(f"error: {exc.message}\n")
            if hint:
                sys.stderr.write(f"hint: {hint}\n")
            status = run_exit_code(exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - the job's supervisor must say why
            sys.stderr.write(f"error: the job did not start: {exc!r}\n")
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as channel:
        report = channel.read()
    if report:
        job = json.loads(report)
        sys.stderr.write(
            f"guard: job {job['id']} started (pid {job['pid']}); output: "
            f"{job['log']}; stop it: guard jobs stop {job['id']}\n"
        )
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _supervise(invocation: Invocation, options: RunOptions, channel: int) -> int:
    """In the job's supervisor: judge, record, report, then run to the end."""
    assessed = assess(invocation, options)
    if isinstance(assessed, Blocked):
        answer(assessed)
        return assessed.exit_status
    session = assessed.session
    refusal = _level_refusal(invocation, session.level)
    if refusal is not None:
        sys.stderr.write(refusal + "\n")
        return _BLOCKED
    folder = jobs_folder(invocation.log_dir, session.session_id)
    limit = invocation.policy.model.jobs.max_running
    claimed = claim_job(folder, _job_fields(options, session), limit)
    if isinstance(claimed, list):
        sys.stderr.write(_budget_refusal(claimed, limit) + "\n")
        return _BLOCKED
    try:
        prepared = _record_start(assessed, options, claimed, folder)
    except BaseException:
        forget_job(folder, claimed)
        raise
    if isinstance(prepared, int):
        forget_job(folder, claimed)
        return prepared
    log = folder / f"{claimed}.log"
    said = {"id": claimed, "pid": os.getpid(), "log": str(log)}
    os.write(channel, json.dumps(said).encode())
    os.close(channel)
    _detach(log)
    status, finished = run_prepared(prepared)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)  # the records come first now
    _job_ended(prepared, claimed, finished)
    mark_ended(folder, claimed, {"exit_status": status, "ended": _now()})
    return status


def _record_start(
    assessed: Assessed, options: RunOptions, job_id: str, folder: Path
) -> Prepared | int:
    """``command.started`` then ``job.started``; the exit status when blocked.

    Raises:
        GuardError: a record cannot be written (the start is finished as not
            run when ``job.started`` is the one that failed).
    """
    prepared = commit(assessed, options)
    if isinstance(prepared, Blocked):
        answer(prepared)
        return prepared.exit_status
    try:
        _job_started(prepared, job_id, folder / f"{job_id}.log")
    except AuditError as exc:
        _not_started(prepared, f"job.started cannot be written: {exc.message}")
        raise
    return prepared


def _level_refusal(invocation: Invocation, level: Level) -> str | None:
    """Why the policy's ``[jobs] lowest_level`` refuses a job here, or None."""
    lowest = parse_required_level(invocation.policy.model.jobs.lowest_level)
    if lowest is not None and level >= lowest:
        return None
    where = "no level" if lowest is None else f"{lowest.name} and up"
    return (
        f"guard: blocked: session jobs are allowed at {where} "
        f"([jobs] lowest_level), session is {level.name}"
    )


def _budget_refusal(running: list[Job], limit: int) -> str:
    names = ", ".join(job.id for job in running)
    return (
        f"guard: blocked: the session's job budget is used up: {len(running)} of "
        f"{limit} running ({names}) ([jobs] max_running)\n"
        f"guard: next: stop one first: guard jobs stop {running[0].id}"
    )


def _job_fields(options: RunOptions, session: SessionContext) -> dict[str, Any]:
    """The job's file, less its id and log (given when it is claimed)."""
    import psutil  # noqa: PLC0415 - jobs only

    return {
        "session_id": session.session_id,
        "command": " ".join(options.argv),
        "level": session.level.name,
        "pid": os.getpid(),
        "create_time": psutil.Process().create_time(),
        "started": _now(),
    }


def _job_started(prepared: Prepared, job_id: str, log: Path) -> None:
    """Write ``job.started`` (chained and keyed like every record)."""
    fields = {
        "job_id": job_id,
        "command_seq": _seq(prepared),
        "argv": list(prepared.argv),
        "level": prepared.session.level.name,
        "log": str(log),
    }
    prepared.trail.event(EVENT_JOB_STARTED, fields)
    prepared.trail.close()


def _job_ended(prepared: Prepared, job_id: str, finished: dict[str, Any]) -> None:
    """Write ``job.ended`` with the program's status and resource figures."""
    keys = (
        "exit_status",
        "signal",
        "timed_out",
        "duration_ms",
        "cpu_user_s",
        "cpu_system_s",
        "peak_rss_bytes",
        "processes",
    )
    fields: dict[str, Any] = {
        "job_id": job_id,
        "command_seq": _seq(prepared),
        "argv": list(prepared.argv),
    }
    fields.update({key: finished.get(key) for key in keys})
    fields["exit_code"] = fields["exit_status"]  # as command.finished names it
    for attempt in range(3):  # the program ran: a busy log only delays this
        try:
            prepared.trail.event(EVENT_JOB_ENDED, fields)
            break
        except AuditError:
            time.sleep(0.5 * (attempt + 1))
    prepared.trail.close()


def _not_started(prepared: Prepared, why: str) -> None:
    """Finish the started command as not run (the job never started)."""
    finish(prepared, {"exit_status": _RUN_FAILED, "error": why, "not_run": True})


def _detach(log: Path) -> None:
    """Stdin from /dev/null; stdout and stderr to the job's log."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    for source, target in ((null, 0), (out, 1), (out, 2)):
        os.dup2(source, target)
    os.close(null)
    os.close(out)


def _seq(prepared: Prepared) -> int | None:
    return prepared.start.seq if prepared.start is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
