"""``guard replay``: re-judge recorded sessions (or agent transcripts) now.

Parses options, reads the logs, hands them to :mod:`statetrace_guard.replay`
and renders the rows; ``--execute`` re-runs the recorded allowed commands
through ``guard run`` in a scratch workspace and compares exit statuses.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from statetrace_guard.cli.common import (
    enforcement_option,
    enforcement_value,
    guard_errors,
    policy_option,
)
from statetrace_guard.errors import ExitCode, UsageError
from statetrace_guard.invocation import Invocation, resolve_invocation, resolve_level
from statetrace_guard.levels import OPT_IN_INSTALL, OPT_IN_NET, Level
from statetrace_guard.replay import (
    Change,
    RecordedCommand,
    Replayer,
    ReplayResult,
    ReplaySettings,
    Row,
    read_session,
)
from statetrace_guard.transcripts import TranscriptFormat

if TYPE_CHECKING:
    from statetrace_guard.rerun import Rerun

__all__ = ["replay"]

_PROGRESS_FROM = 10_000
_MAX_JOBS = 4
_ANNOUNCE_FROM = 10_000_000  # bytes
_CHANGE_WORDS = {
    Change.NOW_BLOCKED: "now blocked",
    Change.NOW_ALLOWED: "now allowed",
    Change.CHANGED: "changed",
    Change.UNCHANGED: "unchanged",
}


@dataclass(frozen=True, slots=True)
class _Output:
    """How to render: JSON Lines or text, every row or only changed ones."""

    as_json: bool
    only_changed: bool


@click.command()
@click.argument(
    "logs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@policy_option
@click.option(
    "--level",
    type=click.Choice(["L0", "L1", "L2", "L3"], case_sensitive=False),
    default=None,
    help="Judge every command at this level [default: the level recorded; "
    "for transcripts $STATETRACE_GUARD_LEVEL, else L1].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines.")
@click.option(
    "--only-changed", is_flag=True, help="Leave unchanged commands out of --json."
)
@click.option(
    "--fail-on",
    type=click.Choice(["blocked", "allowed", "any"]),
    default="any",
    show_default=True,
    help="Which change makes the exit status 1.",
)
@click.option("--no-verify", is_flag=True, help="Do not check the logs' chains.")
@click.option(
    "--from",
    "source_format",
    type=click.Choice(["claude-code", "codex"]),
    default=None,
    help="Read agent transcripts in this format instead of session logs.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Log directory the sessions were recorded with [default: Logs/ "
    "under each command's workspace].",
)
@click.option(
    "--execute",
    "execute_in",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    metavar="WORKSPACE",
    help="Re-run the recorded allowed commands through guard in WORKSPACE.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    help="Processes judging distinct commands of long replays [default: CPUs, "
    "at most 4].",
)
@enforcement_option
@guard_errors
def replay(
    logs: tuple[Path, ...],
    policy: Path | None,
    level: str | None,
    as_json: bool,
    only_changed: bool,
    fail_on: str,
    no_verify: bool,
    source_format: str | None,
    log_dir: Path | None,
    execute_in: Path | None,
    jobs: int,
    enforcement: str,
) -> None:
    """Re-judge the commands of session LOGS under the policy and classifier now.

    Every recorded command is judged again at its recorded level (or
    --level) and compared with the record: decision, required level,
    effects and rules. Prints the changed commands and a summary line.
    LOGS may be session files or log directories. Exit 0 when nothing
    changed in the --fail-on direction, 1 when something did (or, with
    --execute, an exit status differs), 4 when a log's chain is broken.
    """
    invocation = resolve_invocation(
        level=level,
        policy=policy,
        log_dir=None,
        enforcement=enforcement_value(enforcement),
    )
    override = Level.parse(level) if level else None
    settings = ReplaySettings(
        policy=invocation.policy,
        policy_file=invocation.policy_file,
        level=override,
        log_dir=log_dir,
        env=_opt_ins(invocation) if source_format else None,
        enforcement=invocation.place.decide.enforcement,
    )
    replayer = Replayer(settings)
    workers = jobs or min(os.cpu_count() or 1, _MAX_JOBS)
    with replayer.prefetching(workers) as offer:
        commands = _read(logs, source_format, invocation, not no_verify, offer)
    result = replayer.replay(commands, _progress(len(commands)))
    output = _Output(as_json=as_json, only_changed=only_changed)
    _render(result, output)
    failed = result.summary.gated(fail_on)
    if execute_in is not None:
        differ = _execute(commands, execute_in, invocation, override, output)
        failed = failed or differ
    sys.exit(ExitCode.NEGATIVE if failed else ExitCode.OK)


def _read(
    paths: Sequence[Path],
    source_format: str | None,
    invocation: Invocation,
    verify: bool,
    offer: Callable[[RecordedCommand], None],
) -> list[RecordedCommand]:
    """Read every command of every log or transcript, in order.

    Each command is offered to the replayer's workers as soon as it is read.
    """
    commands: list[RecordedCommand] = []
    if source_format is not None:
        from statetrace_guard.transcripts import (  # noqa: PLC0415 - --from only
            as_recorded,
            read_transcript,
        )

        level = resolve_level(None, invocation.env)
        for path in _files(paths, "*.jsonl"):
            calls = read_transcript(path, _format(source_format))
            commands.extend(as_recorded(calls, level))
        for command in commands:
            offer(command)
        return commands
    files = _files(paths, "Sessions/*.jsonl", "*.jsonl")
    _announce(files, verify=verify)
    for path in files:
        commands.extend(read_session(path, verify=verify, sink=offer))
    return commands


def _announce(files: Sequence[Path], *, verify: bool) -> None:
    """Say on stderr that a long read has begun."""
    size = sum(path.stat().st_size for path in files if path.is_file())
    if size >= _ANNOUNCE_FROM:
        what = "verifying and reading" if verify else "reading"
        sys.stderr.write(f"replay: {what} {len(files)} log(s), {size / 1e6:.0f} MB\n")
        sys.stderr.flush()


def _format(name: str) -> TranscriptFormat:
    return "codex" if name == "codex" else "claude-code"


def _files(paths: Iterable[Path], *patterns: str) -> list[Path]:
    """Files as given; a directory means its files matching the first pattern found."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        for pattern in patterns:
            matches = sorted(path.glob(pattern))
            if matches:
                found.extend(matches)
                break
        else:
            raise UsageError(f"{path}: no logs found in this directory")
    return found


def _opt_ins(invocation: Invocation) -> dict[str, str]:
    """The opt-in variables of this shell, for transcripts that record none."""
    return {
        name: invocation.env[name]
        for name in (OPT_IN_NET, OPT_IN_INSTALL)
        if name in invocation.env
    }


def _progress(total: int) -> Any:  # noqa: ANN401 - a callback or None
    if total < _PROGRESS_FROM:
        return None
    tty = sys.stderr.isatty()

    def report(done: int) -> None:
        end = "" if tty and done < total else "\n"
        prefix = "\r" if tty else ""
        sys.stderr.write(f"{prefix}replay: {done:,} of {total:,} commands judged{end}")
        sys.stderr.flush()

    return report


def _render(result: ReplayResult, output: _Output) -> None:
    out = sys.stdout
    if output.as_json:
        for row in result.rows:
            if row.change is not Change.UNCHANGED or not output.only_changed:
                out.write(json.dumps(row.as_json(), ensure_ascii=False) + "\n")
        out.write(json.dumps(result.summary.as_json()) + "\n")
        out.flush()
        return
    for row in result.rows:
        if row.change is not Change.UNCHANGED:
            out.write("\n".join(describe_row(row)) + "\n")
    out.write(result.summary.line() + "\n")
    out.flush()


def describe_row(row: Row) -> list[str]:
    """Lines for a changed command: where and what, each change, and why."""
    cmd = row.recorded
    seq = f" (seq {cmd.seq})" if cmd.seq is not None else ""
    head = (
        f"{_CHANGE_WORDS[row.change]:<12} {Path(cmd.source).name}:{cmd.line}{seq} "
        f"at {cmd.level.name}: {_shorten(' '.join(cmd.argv))}"
    )
    parts = [_change_text(row, name) for name in row.fields]
    if "rules" not in row.fields:
        parts.append(f"rule {_list(row.now.rules)}")
    lines = [head, "    " + "; ".join(parts)]
    if row.now.why:
        lines.append("    why: " + _shorten(row.now.why))
    if row.note:
        lines.append("    note: " + row.note)
    return lines


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _change_text(row: Row, name: str) -> str:
    before = getattr(row.recorded, name)
    after = getattr(row.now, name)
    label = {"required_level": "required", "rules": "rule"}.get(name, name)
    return f"{label} {_value(before)} -> {_value(after)}"


def _value(value: object) -> str:
    if value is None:
        return "never"
    if isinstance(value, tuple):
        return _list(value)
    return str(value)


def _list(values: tuple[str, ...]) -> str:
    return ",".join(values) if values else "-"


def _execute(
    commands: Sequence[RecordedCommand],
    workspace: Path,
    invocation: Invocation,
    level: Level | None,
    output: _Output,
) -> bool:
    """Re-run the recorded allowed commands; render; True when a status differs."""
    from statetrace_guard.rerun import rerun_commands  # noqa: PLC0415 - --execute only

    session, reruns = rerun_commands(commands, workspace, invocation.policy_file, level)
    differing = [rerun for rerun in reruns if rerun.differs]
    _render_reruns(reruns, differing, session, output)
    return bool(differing)


def _render_reruns(
    reruns: Sequence[Rerun],
    differing: Sequence[Rerun],
    session: str,
    output: _Output,
) -> None:
    out = sys.stdout
    if output.as_json:
        for rerun in reruns:
            if rerun.differs or not output.only_changed:
                out.write(json.dumps(rerun.as_json(), ensure_ascii=False) + "\n")
    else:
        for rerun in differing:
            cmd = rerun.command
            out.write(
                f"exit differs {Path(cmd.source).name}:{cmd.line}: recorded "
                f"{cmd.exit_status}, now {rerun.status}: {' '.join(cmd.argv)}\n"
            )
    line = (
        f"executed {len(reruns)} commands in session {session}: "
        f"{len(reruns) - len(differing)} same exit status, {len(differing)} differ"
    )
    if output.as_json:
        line = json.dumps(
            {
                "schema_version": 1,
                "kind": "execute-summary",
                "session_id": session,
                "executed": len(reruns),
                "differ": len(differing),
                "summary": line,
            }
        )
    out.write(line + "\n")
    out.flush()
