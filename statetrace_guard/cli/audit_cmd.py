"""``guard verify`` and ``guard log``: thin click commands over the audit core.

Exit codes: ``verify`` 0 when every file is intact, 1 otherwise, 4 when a
file cannot be read; ``log`` 0, or 4 when the log directory cannot be read.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from statetrace_guard.errors import ExitCode, GuardError
from statetrace_guard.paths import default_log_dir, workspace_root

if TYPE_CHECKING:
    from statetrace_guard.audit.review import Entry, Filter, Malformed

__all__ = ["log", "verify"]

_LOG_DIR_HELP = "Log directory (default: Logs/ at the workspace root)."


def _log_dir(option: Path | None) -> Path:
    """Return the log directory: the option, else Logs/ at the workspace root."""
    return option if option is not None else default_log_dir(workspace_root(Path.cwd()))


def _fail(error: GuardError) -> click.exceptions.Exit:
    """Print a GuardError the standard way and return the exit to raise."""
    click.echo(f"error: {error.message}", err=True)
    hint = error.hint()
    if hint:
        click.echo(f"hint: {hint}", err=True)
    return click.exceptions.Exit(error.exit_code)


log_dir_option = click.option(
    "--log-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="STATETRACE_GUARD_LOG_DIR",
    help=_LOG_DIR_HELP,
)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@log_dir_option
@click.option("--anchor", is_flag=True, help="Print each file's head hash.")
@click.option(
    "--expect",
    "expect",
    metavar="HEAD",
    help="Head hash the (single) file must still contain.",
)
@click.option(
    "--expect-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Anchors saved from --anchor ('<head>  <path>' lines).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
def verify(
    paths: tuple[Path, ...],
    log_dir: Path | None,
    anchor: bool,
    expect: str | None,
    expect_file: Path | None,
    as_json: bool,
) -> None:
    """Check log files: schema, hash chain, sequence and time order.

    With no PATH, checks every log under the log directory. Prints one line
    per file and exits 0 only when every file is intact (1 otherwise, 4 when
    a file cannot be read).
    """
    from statetrace_guard.audit import verify as core  # noqa: PLC0415 - lazy CLI

    try:
        targets = list(paths) or [_log_dir(log_dir)]
        anchors = _anchors(targets, expect, expect_file)
        reports = core.verify_paths(targets, anchors)
    except GuardError as error:
        raise _fail(error) from error
    for report in reports:
        if as_json:
            click.echo(json.dumps(report.as_json(), sort_keys=True))
        else:
            click.echo(core.format_anchor(report) if anchor else report.describe())
    if not reports:
        click.echo("no log files found", err=True)
    if not all(report.ok for report in reports):
        raise click.exceptions.Exit(ExitCode.NEGATIVE)


def _anchors(
    targets: list[Path], expect: str | None, expect_file: Path | None
) -> dict[Path, str]:
    """Collect the anchors from --expect and --expect-file."""
    from statetrace_guard.audit.verify import parse_anchors  # noqa: PLC0415 - lazy CLI

    anchors: dict[Path, str] = {}
    if expect_file is not None:
        try:
            text = expect_file.read_text("utf-8")
        except OSError as exc:
            raise click.UsageError(f"cannot read {expect_file}: {exc}") from exc
        anchors.update(parse_anchors(text))
    if expect is not None:
        if len(targets) != 1 or targets[0].is_dir():
            raise click.UsageError("--expect needs exactly one log file")
        anchors[targets[0]] = expect.strip().lower()
    return anchors


def _entries(paths: Iterable[Path]) -> Iterator[Entry]:
    """Yield the good entries; report malformed lines on stderr and go on."""
    from statetrace_guard.audit.review import Malformed, read_entries  # noqa: PLC0415 - lazy

    for item in read_entries(paths):
        if isinstance(item, Malformed):
            click.echo(item.describe(), err=True)
            continue
        yield item


def _build_filter(options: dict[str, Any]) -> Filter:
    """Turn the listing options into a review Filter."""
    from statetrace_guard.audit.review import Filter, parse_time  # noqa: PLC0415 - lazy CLI

    try:
        since = parse_time(options["since"]) if options.get("since") else None
        until = parse_time(options["until"]) if options.get("until") else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from exc
    return Filter(
        session=options.get("session"),
        task=options.get("task"),
        since=since,
        until=until,
        decision=options.get("decision"),
        effect=options.get("effect"),
        grep=options.get("grep"),
    )


def _session_paths(log_dir: Path, session: str | None) -> list[Path]:
    """Return the session files to read (one when --session is given)."""
    from statetrace_guard.audit.review import session_files  # noqa: PLC0415 - lazy CLI

    if session is not None:
        return [log_dir / "Sessions" / f"{session}.jsonl"]
    if not (log_dir / "Sessions").is_dir():
        return []
    return session_files(log_dir)


@click.group(invoke_without_command=True)
@log_dir_option
@click.option("--session", help="Only this session.")
@click.option("--task", help="Only commands of this task-board id.")
@click.option("--since", help="From TIME (RFC 3339, a date, or 30m/2h/1d ago).")
@click.option("--until", help="Up to TIME.")
@click.option("--decision", type=click.Choice(["allow", "block"]))
@click.option(
    "--effect", help="Only commands with this effect (read, write, network...)."
)
@click.option("--grep", help="Only records containing TEXT (case-insensitive).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw records.")
@click.pass_context
def log(ctx: click.Context, /, log_dir: Path | None, **options: Any) -> None:  # noqa: ANN401 - click options
    """List recorded commands, one aligned line each (blocked ones marked BLOCK).

    Malformed lines are reported with file and line number and skipped.
    """
    ctx.obj = _log_dir(log_dir)
    if ctx.invoked_subcommand is not None:
        return
    from statetrace_guard.audit.review import command_rows, format_row  # noqa: PLC0415 - lazy CLI

    wanted = _build_filter(options)
    entries = [
        e
        for e in _entries(_session_paths(ctx.obj, options["session"]))
        if wanted.accepts(e.record)
    ]
    if options["as_json"]:
        for entry in entries:
            click.echo(json.dumps(entry.record, ensure_ascii=False, sort_keys=True))
        return
    for row in command_rows(entries):
        click.echo(format_row(row, _width()))


def _width() -> int:
    """Return the terminal width, at least 80 columns when not a terminal."""
    if not sys.stdout.isatty():
        return 80
    return max(os.get_terminal_size().columns, 40)


@log.command()
@click.option("--session", help="Only this session.")
@log_dir_option
@click.pass_obj
def summary(group_dir: Path, session: str | None, log_dir: Path | None) -> None:
    """Summarise: commands per level and effect, blocks, hosts, slowest, failures."""
    from statetrace_guard.audit.review import command_rows, format_summary, summarize  # noqa: PLC0415 - lazy CLI

    rows = command_rows(_entries(_session_paths(log_dir or group_dir, session)))
    for line in format_summary(summarize(rows), _width()):
        click.echo(line)


@log.command()
@click.option(
    "-f", "--follow", "follow_", is_flag=True, help="Keep printing new records."
)
@click.option(
    "-n", "--lines", default=10, show_default=True, help="Records to show first."
)
@log_dir_option
@click.pass_obj
def tail(group_dir: Path, follow_: bool, lines: int, log_dir: Path | None) -> None:
    """Show the newest session's last records; -f follows it live."""
    log_dir = log_dir or group_dir
    from statetrace_guard.audit import review  # noqa: PLC0415 - lazy CLI

    path = review.newest_session(log_dir) if (log_dir / "Sessions").is_dir() else None
    if path is None:
        click.echo("no sessions yet", err=True)
        return
    size = path.stat().st_size
    entries = list(_entries([path]))
    for entry in entries[-lines:] if lines > 0 else []:
        click.echo(_tail_line(entry))
    if not follow_:
        return
    for item in review.follow(path, start=size):
        click.echo(
            item.describe() if isinstance(item, review.Malformed) else _tail_line(item),
            err=isinstance(item, review.Malformed),
        )


def _tail_line(entry: Entry | Malformed) -> str:
    """Format one record for ``tail``: a command row or the event name."""
    from statetrace_guard.audit.review import COMMAND_EVENTS, Malformed, Row, format_row  # noqa: PLC0415 - lazy CLI

    if isinstance(entry, Malformed):
        return entry.describe()
    record = entry.record
    if record.get("event") in COMMAND_EVENTS:
        state = {"command.blocked": "blocked", "command.started": "unfinished"}
        return format_row(
            Row(record, state.get(str(record["event"]), "finished")), _width()
        )
    return f"{record.get('ts', record.get('Timestamp', ''))} {record.get('event')}"
