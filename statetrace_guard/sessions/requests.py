"""What an agent may ask the guard itself from inside ``guard run``.

Three requests are served by ``guard run`` instead of being run as a
program, whether they come as bare argv or inside the script a runtime wraps
every command in (``bash -c``, ``sh -lc``, ``pwsh -Command``):

* ``guard escalate --to L2|L3 --reason TEXT``: records a request for the
  operator (a program in the sandbox could not write guard's home);
* ``guard session status [--json]``: this session's level, approvals,
  counts and budget;
* ``guard approvals --mine [--pending] [--json]``: this session's requests
  and their answers, read-only;
* ``guard jobs [--json]``, ``guard jobs log ID``, ``guard jobs stop ID``:
  this session's jobs (their files and output are in guard's home);
* ``guard run --background -- PROGRAM ...``: starts a job of this session
  (a ``guard run`` of its own, outside the sandbox, which judges and records
  the program like any command; a sandboxed one could not supervise it).

A script is served only when the request is all it does: besides the
request it may hold the shell wrapper itself and changes of directory, and
the request may not redirect its output into a file. Anything else is judged
like any other command. Operator commands (``approve``, ``deny``, ``session
resume``) are never served: they refuse to run inside a guarded tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.errors import ExitCode, GuardError
from statetrace_guard.policy import CompiledPolicy

__all__ = ["AgentRequest", "Served", "find_request", "serve"]

Kind = Literal["escalate", "status", "approvals", "jobs", "background"]
_GUARD_NAMES = frozenset({"guard", "guard.exe"})
_WRAPPERS = frozenset(
    {"posix:bash", "posix:sh", "posix:dash", "posix:zsh", "posix:ksh"}
)
_MOVES = frozenset({"cd", "pushd", "popd", "set-location", "push-location", "true"})
_STATUS_OPTIONS = frozenset({"--json"})
_APPROVALS_OPTIONS = frozenset({"--mine", "--pending", "--json"})
_USAGE = (
    "inside guard run the guard serves `guard escalate --to L2|L3 --reason TEXT`, "
    "`guard session status [--json]`, `guard approvals --mine [--pending] "
    "[--json]`, `guard jobs [--json] | log ID | stop ID` and "
    "`guard run --background -- PROGRAM [ARGS...]`"
)


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """A request found in a command: its kind and the guard's arguments."""

    kind: Kind
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Served:
    """The answer: what to print on stdout and stderr, and the exit status."""

    exit_status: int
    stdout: str = ""
    stderr: str = ""


def find_request(classification: Classification) -> AgentRequest | None:
    """The request a command makes of the guard, if that is all it does."""
    requests = [c for c in classification.commands if _is_guard(c)]
    if len(requests) != 1 or classification.parse_errors:
        return None
    request = requests[0]
    others = [c for c in classification.commands if c is not request]
    if request.written or not all(_harmless(c) for c in others):
        return None
    args = request.argv[1:]
    kind = _kind(args)
    return None if kind is None else AgentRequest(kind, args)


def _is_guard(command: SimpleCommand) -> bool:
    return command.name.lower() in _GUARD_NAMES


def _harmless(command: SimpleCommand) -> bool:
    """The wrapper shell, or a change of directory: nothing of its own."""
    if command.written:
        return False
    return command.spec in _WRAPPERS or command.name.lower() in _MOVES


def _kind(args: Sequence[str]) -> Kind | None:
    if args[:1] == ("escalate",):
        return "escalate"
    if tuple(args[:2]) == ("session", "status"):
        return "status"
    if args[:1] == ("approvals",) and "--mine" in args:
        return "approvals"
    if args[:1] == ("jobs",):
        return "jobs"
    if args[:1] == ("run",) and "--background" in args[: _end_of_options(args)]:
        return "background"
    return None


def _end_of_options(args: Sequence[str]) -> int:
    return args.index("--") if "--" in args else len(args)


@dataclass(frozen=True, slots=True)
class Where:
    """What serving needs to know about the run that asks."""

    workspace: Path
    log_dir: Path
    policy: CompiledPolicy
    session_id: str
    env: Mapping[str, str]
    cwd: Path | None = None
    policy_file: Path | None = None


def serve(request: AgentRequest, where: Where) -> Served:
    """Answer a request for the session ``where.session_id``.

    Errors become a one-line answer with guard's exit status for them (the
    agent reads it like any command's failure); nothing runs.
    """
    handlers: dict[Kind, Callable[[AgentRequest, Where], Served]] = {
        "escalate": _escalate,
        "status": _status,
        "approvals": _approvals,
        "jobs": _jobs,
        "background": _background,
    }
    try:
        return handlers[request.kind](request, where)
    except GuardError as error:
        hint = error.hint()
        text = f"error: {error.message}" + (f"\nhint: {hint}" if hint else "")
        return Served(int(error.exit_code), stderr=text)


def _usage() -> Served:
    # NOTE(exit): 1, not click's 2: under `guard run` a 2 would read as a
    # usage error of `guard run` itself (which exits 125 for those).
    return Served(int(ExitCode.NEGATIVE), stderr=f"error: {_USAGE}")


def _escalate(request: AgentRequest, where: Where) -> Served:
    from statetrace_guard.sessions.escalation import (  # noqa: PLC0415 - rare path
        escalate_session,
        parse_escalation,
    )

    parsed = parse_escalation(("guard", *request.args))
    if parsed is None:
        return _usage()
    request_id = escalate_session(where.log_dir, where.session_id, *parsed)
    return Served(
        int(ExitCode.OK),
        stdout=request_id + "\n",
        stderr=(
            f"guard: escalation requested: {request_id} "
            f"(the operator runs `guard approve {request_id}`); "
            "guard session status shows when it is in force"
        ),
    )


def _status(request: AgentRequest, where: Where) -> Served:
    from statetrace_guard.sessions.lifecycle import (  # noqa: PLC0415 - rare path
        session_status,
    )
    from statetrace_guard.sessions.views import (  # noqa: PLC0415 - rare path
        status_json,
        status_lines,
    )

    options = set(request.args[2:])
    if not options <= _STATUS_OPTIONS:
        return _usage()
    found = session_status(
        where.workspace, where.log_dir, where.policy, where.session_id, where.env
    )
    if "--json" in options:
        return Served(
            int(ExitCode.OK), json.dumps(status_json(found), sort_keys=True) + "\n"
        )
    return Served(int(ExitCode.OK), "\n".join(status_lines(found)) + "\n")


def _approvals(request: AgentRequest, where: Where) -> Served:
    from statetrace_guard.sessions.approvals import load_book  # noqa: PLC0415
    from statetrace_guard.sessions.views import (  # noqa: PLC0415 - rare path
        approval_line,
        approval_rows,
    )

    options = set(request.args[1:])
    if not options <= _APPROVALS_OPTIONS:
        return _usage()
    rows = approval_rows(
        load_book(where.workspace), "--pending" in options, where.session_id
    )
    if "--json" in options:
        lines = [
            json.dumps({"schema_version": 1, **row}, sort_keys=True) for row in rows
        ]
    else:
        lines = [approval_line(row) for row in rows] or ["no requests"]
    return Served(int(ExitCode.OK), "".join(line + "\n" for line in lines))


def _jobs(request: AgentRequest, where: Where) -> Served:
    """``guard jobs [--json]``, ``jobs log ID``, ``jobs stop ID``: this session's."""
    from statetrace_guard import jobs  # noqa: PLC0415 - rare path

    args = tuple(request.args[1:])
    if args in ((), ("--json",)):
        found = jobs.list_jobs(where.log_dir, where.session_id)
        if args:
            text = "".join(
                json.dumps(j.as_dict(), sort_keys=True) + "\n" for j in found
            )
            return Served(int(ExitCode.OK), text)
        return Served(int(ExitCode.OK), "\n".join(jobs.job_lines(found)) + "\n")
    if len(args) != 2 or args[0] not in {"log", "stop"}:  # noqa: PLR2004 - ACTION ID
        return _usage()
    job = jobs.find_job(where.log_dir, where.session_id, args[1])
    if job is None:
        return Served(int(ExitCode.NEGATIVE), stderr=f"error: no job {args[1]}")
    if args[0] == "log":
        return Served(int(ExitCode.OK), jobs.log_tail(job))
    jobs.stop_job(job)
    return Served(
        int(ExitCode.OK), stderr=f"guard: stopped job {job.id} ({job.command})"
    )


_BACKGROUND_WAIT_S = 120.0


def _background(request: AgentRequest, where: Where) -> Served:
    """``guard run --background -- PROGRAM ...``: a job of this session.

    Only ``--background`` may come before ``--``: the level, policy, log
    directory and session are the asking command's own.
    """
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    args = tuple(request.args[1:])
    end = _end_of_options(args)
    if set(args[:end]) != {"--background"} or end + 1 >= len(args):
        return _usage()
    policy = ("--policy", str(where.policy_file)) if where.policy_file else ()
    command = [
        sys.executable,
        "-m",
        "statetrace_guard",
        "run",
        *policy,
        "--log-dir",
        str(where.log_dir),
        "--session",
        where.session_id,
        "--background",
        "--",
        *args[end + 1 :],
    ]
    env = {**where.env, "STATETRACE_GUARD_DAEMON": "off"}
    done = subprocess.run(
        command,
        cwd=where.cwd or where.workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_BACKGROUND_WAIT_S,
        check=False,
    )
    out, err = (
        part.decode("utf-8", errors="replace") for part in (done.stdout, done.stderr)
    )
    return Served(done.returncode, out, err.rstrip("\n"))
