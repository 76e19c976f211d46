"""Session jobs: what ``guard run --background`` leaves running (issue 15.4).

A job is one guarded command whose supervisor outlives the ``guard run``
that started it: the same judgement, records, sandbox and level envelope as
any command (below L3 it joins the session's network namespace, so the next
command reaches the server it started), with stdin from ``/dev/null`` and
stdout and stderr in a log file in guard's home. Its supervisor writes
``command.started``, then ``job.started`` (if either cannot be written the
job does not start), and when the program ends ``command.finished`` and
``job.ended`` with its status and resource figures.

Each job has a small JSON file in guard's home (``jobs/<session key>/``):
``J<n>.json`` when it starts, ``J<n>.end.json`` when it ends. A job is
running while its supervisor (by pid and start time) is alive.
``guard jobs stop`` and ``guard session end`` send the supervisor SIGTERM,
which it passes to the program's tree like any ``guard run`` does (SIGKILL
after the grace period).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.home import guard_home_text

__all__ = [
    "EVENT_JOB_ENDED",
    "EVENT_JOB_STARTED",
    "Job",
    "claim_job",
    "find_job",
    "forget_job",
    "job_lines",
    "jobs_folder",
    "list_jobs",
    "log_tail",
    "mark_ended",
    "stop_job",
    "stop_session_jobs",
    "write_job",
]

EVENT_JOB_STARTED = "job.started"
EVENT_JOB_ENDED = "job.ended"
_STOP_WAIT_S = 15.0
_POLL_S = 0.05
_LOG_TAIL_BYTES = 64 * 1024
_SAME_START_S = 0.5  # create_time is rounded to clock ticks
_SAME_START_S = 0.5  # create_time is rounded to clock ticks


@dataclass(frozen=True, slots=True)
class Job:
    """One session job as its files describe it."""

    id: str
    session_id: str
    command: str
    level: str
    pid: int
    started: str
    log: str
    status: str  # running | ended | lost
    exit_status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form ``guard jobs --json`` prints."""
        return {
            "id": self.id,
            "session_id": self.session_id,
            "command": self.command,
            "level": self.level,
            "pid": self.pid,
            "started": self.started,
            "log": self.log,
            "status": self.status,
            "exit_status": self.exit_status,
        }


def jobs_folder(log_dir: Path | str, session_id: str) -> Path:
    """Guard's home folder of one session's jobs."""
    key = f"{os.path.realpath(log_dir)}\0{session_id}".encode()
    return Path(guard_home_text()) / "jobs" / hashlib.sha256(key).hexdigest()[:32]


def claim_job(
    folder: Path, fields: dict[str, Any], max_running: int
) -> str | list[Job]:
    """Claim the next job id (``J1``, ``J2``...) unless the budget is used up.

    Under the folder's lock, so two jobs started at once cannot both take
    the last place: the job's file (``fields`` plus its id) is written at
    once, and the caller's process counts as running from then on.

    Returns:
        The id; or the running jobs when ``max_running`` of them run.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _jobs_in(folder)
        running = [job for job in found if job.status == "running"]
        if len(running) >= max_running:
            return running
        numbers = [int(path.stem[1:]) for path in folder.glob("J*.log")]
        numbers += [int(job.id[1:]) for job in found]
        job_id = f"J{max(numbers, default=0) + 1}"
        write_job(
            folder, {**fields, "id": job_id, "log": str(folder / f"{job_id}.log")}
        )
        (folder / f"{job_id}.log").touch(mode=0o600)
        return job_id


def forget_job(folder: Path, job_id: str) -> None:
    """Remove a claim whose job never started (its log stays, numbers stay unique)."""
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{job_id}.json").unlink()


def write_job(folder: Path, fields: dict[str, Any]) -> None:
    """Write a started job's file (atomically: a reader sees all or nothing)."""
    target = folder / f"{fields['id']}.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(fields, sort_keys=True), encoding="utf-8")
    temporary.replace(target)


def mark_ended(folder: Path, job_id: str, fields: dict[str, Any]) -> None:
    """Write the job's end file."""
    target = folder / f"{job_id}.end.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(fields, sort_keys=True), encoding="utf-8")
    temporary.replace(target)


def list_jobs(log_dir: Path | str, session_id: str) -> list[Job]:
    """The session's jobs, oldest first, each with its status now."""
    folder = jobs_folder(log_dir, session_id)
    return _jobs_in(folder) if folder.is_dir() else []


def _jobs_in(folder: Path) -> list[Job]:
    found = []
    for path in folder.glob("J*.json"):
        if path.name.endswith(".end.json"):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError):
            found.append(_job(folder, json.loads(path.read_text(encoding="utf-8"))))
    return sorted(found, key=lambda job: int(job.id[1:]))


def _job(folder: Path, data: dict[str, Any]) -> Job:
    end = folder / f"{data['id']}.end.json"
    exit_status = None
    if end.exists():
        status = "ended"
        exit_status = json.loads(end.read_text(encoding="utf-8")).get("exit_status")
    elif _alive(int(data["pid"]), float(data["create_time"])):
        status = "running"
    else:
        status = "lost"
    return Job(
        id=str(data["id"]),
        session_id=str(data["session_id"]),
        command=str(data["command"]),
        level=str(data["level"]),
        pid=int(data["pid"]),
        started=str(data["started"]),
        log=str(data["log"]),
        status=status,
        exit_status=exit_status,
    )


def _alive(pid: int, create_time: float) -> bool:
    """The supervisor runs still: same pid, same start time (pids are reused)."""
    import psutil  # noqa: PLC0415 - jobs listing only

    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - create_time) < _SAME_START_S
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def job_lines(jobs: list[Job]) -> list[str]:
    """The table ``guard jobs`` prints: id, status, level, pid, started, command."""
    header = f"{'ID':<5} {'STATUS':<8} {'LEVEL':<5} {'PID':>7}  {'STARTED':<25}"
    lines = [header + " COMMAND"]
    for job in jobs:
        status = job.status if job.exit_status is None else f"exit {job.exit_status}"
        lines.append(
            f"{job.id:<5} {status:<8} {job.level:<5} {job.pid:>7}  "
            f"{job.started:<25} {job.command}"
        )
    return lines


def log_tail(job: Job, limit: int = _LOG_TAIL_BYTES) -> str:
    """The end of the job's output (its last ``limit`` bytes), as text."""
    try:
        with open(job.log, "rb") as handle:  # noqa: PTH123 - one read
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def find_job(log_dir: Path | str, session_id: str, job_id: str) -> Job | None:
    """The session's job ``job_id`` (``J3`` or ``3``), if there is one."""
    wanted = job_id if job_id.upper().startswith("J") else f"J{job_id}"
    found = list_jobs(log_dir, session_id)
    return next((job for job in found if job.id == wanted.upper()), None)


def stop_job(job: Job, *, wait: float = _STOP_WAIT_S, signalled: bool = False) -> bool:
    """SIGTERM the job's supervisor (once); wait for its end; whether it ended."""
    if job.status != "running":
        return job.status == "ended"
    if not signalled:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job.pid, signal.SIGTERM)
    folder_end = jobs_folder_of(job) / f"{job.id}.end.json"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if folder_end.exists():
            return True
        time.sleep(_POLL_S)
    with contextlib.suppress(ProcessLookupError):
        os.kill(job.pid, signal.SIGKILL)  # its init takes the tree with it
    return False


def jobs_folder_of(job: Job) -> Path:
    """The folder holding ``job``'s files (its log lies there too)."""
    return Path(job.log).parent


def stop_session_jobs(log_dir: Path | str, session_id: str) -> list[Job]:
    """Stop every running job of the session; return those stopped."""
    running = [job for job in list_jobs(log_dir, session_id) if job.status == "running"]
    for job in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(job.pid, signal.SIGTERM)
    for job in running:
        stop_job(job, signalled=True)
    return running
