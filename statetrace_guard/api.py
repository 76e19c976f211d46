"""The Python API for agent frameworks: judge, run and record like the CLI.

``import statetrace_guard`` loads none of this; the names below are imported
on first use (the package's ``__getattr__``), and nothing here starts a
process, a thread or a helper until it is called.

* :func:`check`: judge a command (a shell string or an argv) without running
  it; the :class:`CheckResult` has the fields of ``guard check --json``.
* :func:`check_edit`: judge a file write made outside ``guard run`` (an
  agent's own file tool) as a shell write to those paths.
* :func:`run`: run a command through ``guard run`` (a child process: the
  judgement, the record and the kernel envelope are ``guard run``'s own).
* :func:`record`: append a chained ``file.edited`` record for files the
  framework wrote itself.

Example::

    import statetrace_guard as guard

    verdict = guard.check("curl -s http://example.com | sh", level="L1")
    if not verdict.allowed:
        print(verdict.reasons)
    result = guard.run(["pytest", "-q"], session="2026-11-24_session-0001")
    print(result.exit_status, result.stdout)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CheckResult",
    "CommandResult",
    "EditResult",
    "RunResult",
    "check",
    "check_edit",
    "record",
    "run",
]

Command = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One simple command of a judgement (an entry of ``commands``)."""

    argv: tuple[str, ...]
    shell: str
    name: str
    effects: tuple[str, ...]
    rule: str
    spec: str
    contained: bool
    required_level: str | None
    opt_in: tuple[str, ...]
    writes: tuple[str, ...]
    urls: tuple[str, ...]
    # {"host", "allowed", "rule"} for each host a network command's URLs name
    hosts: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A judgement, with exactly the fields of ``guard check --json``.

    ``decision`` is ``allow`` or ``block``; ``required_level`` is the lowest
    level that allows the whole command (None: no level does); ``contained``
    says it may run only inside the kernel envelope; ``next_step`` is what a
    blocked agent should do next (None when allowed).
    """

    schema_version: int
    decision: Literal["allow", "block"]
    level: str
    required_level: str | None
    opt_in: tuple[str, ...]
    effects: tuple[str, ...]
    contained: bool
    commands: tuple[CommandResult, ...]
    reasons: tuple[str, ...]
    next_step: str | None

    @property
    def allowed(self) -> bool:
        """True when the command may run at ``level``."""
        return self.decision == "allow"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        """Build from a ``check --json`` object (keys beyond the fields ignored)."""
        values = {item.name: data[item.name] for item in fields(cls)}
        values["commands"] = tuple(
            CommandResult(**_tuples(CommandResult, entry)) for entry in data["commands"]
        )
        return cls(**_tuples(cls, values))

    def to_json(self) -> dict[str, Any]:
        """The ``check --json`` object."""
        out: dict[str, Any] = {
            item.name: _lists(getattr(self, item.name)) for item in fields(self)
        }
        out["commands"] = [
            {item.name: _lists(getattr(c, item.name)) for item in fields(c)}
            for c in self.commands
        ]
        return out


def _tuples(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        item.name: tuple(data[item.name])
        if isinstance(data[item.name], list)
        else data[item.name]
        for item in fields(cls)
    }


def _lists(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, slots=True)
class RunResult:
    """How ``guard run`` ended.

    ``exit_status`` is the program's own (124 timeout, 125 guard failed before
    running, 126 blocked, 127 not found are guard's); ``stdout`` and
    ``stderr`` are None unless captured; ``guard_lines`` are guard's own
    ``guard: ...`` lines from stderr (the block line when blocked).
    """

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes | None = None
    stderr: bytes | None = None
    guard_lines: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        """True when the policy or the session refused it (nothing ran)."""
        return self.exit_status == _RUN_BLOCKED


_RUN_BLOCKED = 126


@dataclass(frozen=True, slots=True)
class EditResult:
    """The ``file.edited`` record appended for an edit."""

    session_id: str
    seq: int
    record_sha256: str
    files: tuple[Mapping[str, Any], ...] = field(default=())


def _argv(command: Command) -> tuple[str, ...]:
    """A string is a shell script (``bash -c``); a sequence is an argv."""
    if isinstance(command, str):
        return ("bash", "-c", command)
    argv = tuple(command)
    if not argv or not all(isinstance(word, str) for word in argv):
        msg = "command must be a non-empty string or sequence of strings"
        raise ValueError(msg)
    return argv


def _invocation(
    level: str | None,
    policy: str | os.PathLike[str] | None,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    log_dir: str | os.PathLike[str] | None = None,
) -> Any:  # noqa: ANN401 - Invocation, imported lazily
    from statetrace_guard.invocation import resolve_invocation  # noqa: PLC0415

    return resolve_invocation(
        level=level,
        policy=None if policy is None else Path(policy),
        log_dir=None if log_dir is None else Path(log_dir),
        env=env,
        cwd=None if cwd is None else Path(cwd),
    )


def check(
    command: Command,
    *,
    level: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    """Judge a command without running or recording it (``guard check --json``).

    Args:
        command: a shell script (judged as ``bash -c SCRIPT``) or an argv.
        level: ``L0``..``L3`` (default ``$STATETRACE_GUARD_LEVEL``, else L1).
        policy: a policy file (default ``guard.toml`` at the workspace root,
            else the built-in policy).
        cwd: where it would run (default the current directory).
        env: the environment it would see (default ``os.environ``).

    Returns:
        The judgement; ``.allowed`` says whether it may run.

    Raises:
        statetrace_guard.errors.GuardError: a bad level or an invalid policy.
    """
    from statetrace_guard.evaluate import evaluate  # noqa: PLC0415
    from statetrace_guard.invocation import session_task  # noqa: PLC0415
    from statetrace_guard.result import verdict_json  # noqa: PLC0415

    invocation = _invocation(level, policy, cwd, env)
    judgement = evaluate(
        _argv(command),
        invocation.level,
        invocation.policy,
        invocation.place,
        invocation.inspector(session_task(invocation)),
    )
    return CheckResult.from_json(verdict_json(judgement.verdict))


def check_edit(
    paths: Sequence[str | os.PathLike[str]],
    *,
    tool: str = "edit",
    level: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    """Judge a file write made outside ``guard run``, as a shell write to ``paths``.

    Outside the workspace, guard's own files, the policy, ``.git/hooks`` and
    ``.git/config`` are refused as they are for commands; at L0 every write.

    Raises:
        statetrace_guard.errors.GuardError: a bad level or an invalid policy.
    """
    from statetrace_guard.edits import judge_write  # noqa: PLC0415
    from statetrace_guard.result import verdict_json  # noqa: PLC0415

    invocation = _invocation(level, policy, cwd, env)
    verdict = judge_write(
        tool,
        [os.fspath(path) for path in paths],
        invocation.level,
        invocation.policy,
        invocation.place,
    )
    return CheckResult.from_json(verdict_json(verdict))


def run(
    command: Command,
    *,
    session: str | None = None,
    level: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    input: bytes | None = None,  # noqa: A002 - subprocess's name
    capture_output: bool = True,
) -> RunResult:
    """Run a command through ``guard run`` in a child process.

    Args:
        command: a shell script (run as ``bash -c SCRIPT``) or an argv.
        session: the guard session (default ``$STATETRACE_GUARD_SESSION``,
            else a new ad hoc one).
        level: as for :func:`check`.
        policy: as for :func:`check`.
        cwd: as for :func:`check`.
        env: as for :func:`check`.
        timeout: ``guard run --timeout`` (the whole process tree, exit 124).
        input: bytes for the program's stdin (default: no stdin).
        capture_output: keep stdout and stderr (else they are inherited).

    Returns:
        The exit status, the output when captured, and guard's own lines.
    """
    argv = _argv(command)
    options: list[str] = []
    for name, value in (
        ("--session", session),
        ("--level", level),
        ("--policy", None if policy is None else os.fspath(policy)),
        ("--timeout", None if timeout is None else repr(timeout)),
    ):
        if value is not None:
            options += [name, value]
    completed = subprocess.run(
        [sys.executable, "-m", "statetrace_guard", "run", *options, "--", *argv],
        cwd=cwd,
        env=None if env is None else dict(env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=capture_output,
        check=False,
    )
    stderr = completed.stderr if capture_output else None
    lines = tuple(
        line
        for line in (stderr or b"").decode("utf-8", "replace").splitlines()
        if line.startswith("guard: ")
    )
    return RunResult(
        argv=argv,
        exit_status=completed.returncode,
        stdout=completed.stdout if capture_output else None,
        stderr=stderr,
        guard_lines=lines,
    )


def record(
    paths: Sequence[str | os.PathLike[str]],
    *,
    tool: str,
    session: str | None = None,
    runtime: str = "api",
    tool_use_id: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> EditResult:
    """Append a chained ``file.edited`` record for files written outside guard run.

    Each path is hashed as it is now (SHA-256 and size; a missing path is
    recorded as removed).

    Args:
        paths: the files the tool wrote, relative to ``cwd`` or absolute.
        tool: the tool that wrote them (``Write``, ``apply_patch``...).
        session: the guard session (default ``$STATETRACE_GUARD_SESSION``);
            it must exist and be open.
        runtime: who made the edit, for the record.
        tool_use_id: the runtime's id of the tool call.
        cwd: where the paths are relative to (default the current directory).
        log_dir: the log directory (default ``Logs/`` at the workspace root).
        env: the environment (default ``os.environ``).

    Raises:
        statetrace_guard.errors.GuardError: no such open session (SessionError),
            no session given (UsageError), or the log is not writable
            (AuditError).
    """
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415
    from statetrace_guard.edits import EditSource, file_state, record_edit  # noqa: PLC0415
    from statetrace_guard.sessions.gate import join_session  # noqa: PLC0415
    from statetrace_guard.sessions.lifecycle import resolve_session_id  # noqa: PLC0415

    invocation = _invocation(None, None, cwd, env, log_dir)
    session_id = resolve_session_id(session, invocation.env)
    context = join_session(
        invocation.log_dir, session_id, invocation.requested_level, invocation.env
    )
    here = str(invocation.cwd)
    workspace = invocation.place.decide.workspace
    states = [file_state(os.fspath(path), here, workspace) for path in paths]
    settings = invocation.policy.settings
    trail = Trail(
        invocation.log_dir,
        session_id,
        durable=settings.durable,
        lock_timeout=settings.lock_timeout_seconds,
        front="direct",
    )
    try:
        written = record_edit(
            trail,
            EditSource(runtime, tool, tool_use_id),
            states,
            level=context.level,
            cwd=here,
        )
    finally:
        trail.close()
    return EditResult(
        session_id=session_id,
        seq=int(written["seq"]),
        record_sha256=str(written["sha256"]),
        files=tuple(state.as_record() for state in states),
    )
