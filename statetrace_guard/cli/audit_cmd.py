"""``guard verify`` and ``guard log``: thin click commands over the audit core.

Exit codes: ``verify`` 0 when every file is intact and complete, 1 when one
is broken (or cannot be authenticated where it must be), 5 when all are
intact but a command started without a finish, 4 when a file cannot be
read; ``log`` 0, 2 for a session that is not there (or any other bad
option), 4 when the log directory is missing or cannot be read.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from statetrace_guard.errors import AuditError, ExitCode, GuardError
from statetrace_guard.paths import default_log_dir, workspace_root

if TYPE_CHECKING:
    from statetrace_guard.audit.review import Entry, Filter, Malformed, Row, Summary

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
@click.option(
    "--foreign",
    is_flag=True,
    help="The logs come from another machine: check chains only where this "
    "guard's key cannot authenticate them.",
)
def verify(
    paths: tuple[Path, ...],
    log_dir: Path | None,
    anchor: bool,
    expect: str | None,
    expect_file: Path | None,
    as_json: bool,
    foreign: bool,
) -> None:
    """Check log files: schema, chain, sequence, time order, keys, completeness.

    With no PATH, checks every log under the log directory. A log keyed with
    this guard's key has every record's mac checked; one this guard cannot
    authenticate fails unless --foreign (without a key here, the report says
    only the chain was checked). A command started without a finish is
    reported (still running, or dangling: its outcome is unknown). Prints one
    line per file; exits 0 when every file is intact and complete, 1 when
    one is not intact, 5 when all are intact but one has a dangling start,
    4 when a file cannot be read.
    """
    from statetrace_guard.audit import verify as core  # noqa: PLC0415 - lazy CLI

    try:
        targets = list(paths) or [_log_dir(log_dir)]
        anchors = _anchors(targets, expect, expect_file)
        reports = core.verify_paths(targets, anchors, foreign=foreign)
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
    if not all(report.complete for report in reports):
        raise click.exceptions.Exit(ExitCode.INCOMPLETE)


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


@dataclass(frozen=True, slots=True)
class _Listing:
    """The ``guard log`` group's options, handed to ``summary`` and ``tail``."""

    log_dir: Path | None
    options: dict[str, Any]


_EFFECTS = ("read", "write", "network", "install", "dynamic")
_FILTERS = ("task", "since", "until", "decision", "effect", "grep")


def _entries(items: Iterable[Entry | Malformed], wanted: Filter) -> Iterator[Entry]:
    """Yield the good entries the filter accepts; report malformed lines on stderr."""
    from statetrace_guard.audit.review import Malformed  # noqa: PLC0415 - lazy CLI

    for item in items:
        if isinstance(item, Malformed):
            click.echo(item.describe(), err=True)
        elif wanted.accepts(item.record):
            yield item


def _build_filter(options: dict[str, Any], session: str | None) -> Filter:
    """Turn the listing options into a review Filter."""
    from statetrace_guard.audit.review import Filter, parse_time  # noqa: PLC0415 - lazy CLI

    try:
        since = parse_time(options["since"]) if options.get("since") else None
        until = parse_time(options["until"]) if options.get("until") else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from exc
    return Filter(
        session=session,
        task=options.get("task"),
        since=since,
        until=until,
        decision=options.get("decision"),
        effect=options.get("effect"),
        grep=options.get("grep"),
    )


def _existing_log_dir(option: Path | None) -> Path:
    """The log directory, which must exist (exit 4 when it does not)."""
    log_dir = _log_dir(option)
    if not log_dir.is_dir():
        raise _fail(
            AuditError(
                f"no log directory at {log_dir}",
                hint="run guard inside the workspace, or pass --log-dir "
                "(or STATETRACE_GUARD_LOG_DIR)",
            )
        )
    return log_dir


def _session_paths(log_dir: Path, session: str | None) -> tuple[list[Path], str | None]:
    """Return the session files to read and the session id the filter names.

    ``session`` may be a full id or the short form the table shows
    (``11-24#0001``). A session that is not there is a usage error.
    """
    from statetrace_guard.audit.review import session_files  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.audit.table import short_session_ids  # noqa: PLC0415 - lazy CLI

    files = session_files(log_dir) if (log_dir / "Sessions").is_dir() else []
    if session is None:
        return files, None
    names = short_session_ids(path.stem for path in files)
    found = [p for p in files if session in {p.stem, names.get(p.stem)}]
    if len(found) != 1 or "/" in session:
        known = ", ".join(path.stem for path in files[-3:]) or "none"
        raise click.UsageError(
            f"no session {session} in {log_dir / 'Sessions'} (newest: {known})"
        )
    return found, found[0].stem


def _width() -> int | None:
    """The table width: the terminal's, else $COLUMNS, else None (no cutting)."""
    if sys.stdout.isatty():
        try:
            return max(os.get_terminal_size().columns, 40)
        except OSError:
            return 80
    columns = os.environ.get("COLUMNS", "")
    return max(int(columns), 40) if columns.isdigit() else None


def _mark() -> str:
    """The cut marker: an ellipsis on UTF-8 output, else ``~``."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return "…" if encoding.replace("-", "") == "utf8" else "~"


def _format(options: dict[str, Any]) -> str:
    return "json" if options.get("as_json") else str(options.get("fmt") or "table")


@click.group(invoke_without_command=True)
@log_dir_option
@click.option("--session", help="Only this session (its id, or the short form shown).")
@click.option("--task", help="Only records of this task-board id.")
@click.option("--since", help="From TIME (RFC 3339, a date, or 30m/2h/1d ago).")
@click.option("--until", help="Up to TIME.")
@click.option("--decision", type=click.Choice(["allow", "block"]))
@click.option("--effect", type=click.Choice(_EFFECTS), help="Only commands with it.")
@click.option("--grep", help="Only records containing TEXT (case-insensitive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="json: one object per row with its record; csv: one line per row.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--wide", is_flag=True, help="Full times and session ids; cut nothing.")
@click.pass_context
def log(ctx: click.Context, /, log_dir: Path | None, **options: Any) -> None:  # noqa: ANN401 - click options
    """List recorded commands and session events, one row each.

    The table has a header row; blocked rows end with the deciding reason
    (the part that forced the level, as `guard explain` names it). Commands
    are shown on one line (newlines escaped) and, on a terminal or with
    $COLUMNS, cut from the middle to fit; in a pipe nothing is cut. The
    filters apply to `summary` and `tail` too. Malformed lines are reported
    with file and line number and skipped. Exit 2 for a session that is not
    there, 4 when the log directory is missing or unreadable.
    """
    ctx.obj = _Listing(log_dir, options)
    if ctx.invoked_subcommand is not None:
        return
    from statetrace_guard.audit.review import merged_entries, rows  # noqa: PLC0415 - lazy CLI

    directory = _existing_log_dir(log_dir)
    paths, session = _session_paths(directory, options["session"])
    wanted = _build_filter(options, session)
    found = rows(_entries(merged_entries(paths), wanted))
    _print_rows(found, _format(options), tuple(p.stem for p in paths), options)


def _print_rows(
    found: Iterable[Row], fmt: str, sessions: tuple[str, ...], options: dict[str, Any]
) -> None:
    """Write rows as a table, JSON Lines or CSV, streaming."""
    from statetrace_guard.audit.table import CSV_COLUMNS, Layout, row_fields  # noqa: PLC0415 - lazy CLI

    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in found:
            writer.writerow(row_fields(row).values())
        return
    if fmt == "json":
        for row in found:
            payload = {"schema_version": 1, **row_fields(row), "record": row.record}
            if row.started is not None:
                payload["started"] = row.started
            click.echo(json.dumps(payload, ensure_ascii=False, sort_keys=True))
        return
    layout = Layout(_width(), sessions, bool(options.get("wide")), _mark())
    click.echo(layout.header())
    for row in found:
        click.echo(layout.line(row))


def _merge(group: _Listing, session: str | None, log_dir: Path | None) -> _Listing:
    """Combine the group's options with a subcommand's own (which must agree)."""
    options = dict(group.options)
    if session is not None:
        if options.get("session") not in (None, session):
            raise click.UsageError(
                f"--session given twice ({options['session']} and {session})"
            )
        options["session"] = session
    if log_dir is not None and group.log_dir not in (None, log_dir):
        raise click.UsageError("--log-dir given twice with different directories")
    return _Listing(log_dir or group.log_dir, options)


@log.command()
@click.option("--session", help="Only this session.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@log_dir_option
@click.pass_obj
def summary(
    group: _Listing, session: str | None, as_json: bool, log_dir: Path | None
) -> None:
    """Summarise: per level and effect, blocks and their deciding part, and more.

    Also the hosts contacted, the slowest commands and the failures. The
    `guard log` filters apply.
    """
    from statetrace_guard.audit.review import SummaryBuilder, merged_entries, rows  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.audit.table import command_text  # noqa: PLC0415 - lazy CLI

    listing = _merge(group, session, log_dir)
    fmt = "json" if as_json else _format(listing.options)
    if fmt == "csv":
        raise click.UsageError("log summary prints a table or --json, not csv")
    directory = _existing_log_dir(listing.log_dir)
    paths, session_id = _session_paths(directory, listing.options.get("session"))
    wanted = _build_filter(listing.options, session_id)
    builder = SummaryBuilder(command_text)
    for row in rows(_entries(merged_entries(paths), wanted)):
        builder.add(row)
    result = builder.build()
    if fmt == "json":
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, sort_keys=True))
        return
    for line in _summary_lines(result, _width(), _mark()):
        click.echo(line)


def _summary_lines(result: Summary, width: int | None, mark: str) -> list[str]:
    """Render a summary as lines of text."""
    from statetrace_guard.audit.table import Layout, cut, one_line  # noqa: PLC0415 - lazy CLI

    room = (width or 10**6) - 4
    lines = ["commands per level and effect (ran / blocked):"]
    keys = sorted(set(result.ran) | set(result.blocked_counts))
    lines += [
        f"  {level:3} {effect:10} {result.ran[(level, effect)]:6} "
        f"{result.blocked_counts[(level, effect)]:6}"
        for level, effect in keys
    ]
    lines.append(f"blocked ({sum(result.blocked.values())}), with the deciding part:")
    by_count = sorted(result.blocked.items(), key=lambda item: -item[1])
    for (command, reason), count in by_count:
        times = f"{count}x " if count > 1 else ""
        lines.append("  " + cut(f"{times}{command}", room, mark=mark))
        lines.append("    <- " + cut(one_line(reason or "?"), room - 4, mark=mark))
    hosts = ", ".join(f"{h} ({n})" for h, n in result.hosts.most_common())
    lines.append(f"network hosts: {hosts or 'none'}")
    layout = Layout(None if width is None else width - 2, (), mark=mark)
    lines.append("slowest:")
    lines += ["  " + layout.line(row) for row in result.slowest]
    lines.append(f"failures ({sum(result.failures.values())}):")
    for (command, code), count in result.failures.items():
        times = f" ({count}x)" if count > 1 else ""
        lines.append("  " + cut(f"exit {code}{times}: {command}", room, mark=mark))
    if result.unfinished:
        lines.append(f"unfinished commands (no finish recorded): {result.unfinished}")
    return lines


@log.command()
@click.option("--session", help="Only this session (follows it alone with -f).")
@click.option(
    "-f", "--follow", "follow_", is_flag=True, help="Keep printing new records."
)
@click.option(
    "-n", "--lines", default=10, show_default=True, help="Records to show first."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
@log_dir_option
@click.pass_obj
def tail(
    group: _Listing,
    session: str | None,
    follow_: bool,
    lines: int,
    as_json: bool,
    log_dir: Path | None,
) -> None:
    """Show the last records; -f follows new ones.

    Without --session, the records of every session, merged by time, and -f
    follows every session (new ones too). The `guard log` filters apply.
    """
    from statetrace_guard.audit import review  # noqa: PLC0415 - lazy CLI

    listing = _merge(group, session, log_dir)
    directory = _existing_log_dir(listing.log_dir)
    paths, session_id = _session_paths(directory, listing.options.get("session"))
    wanted = _build_filter(listing.options, session_id)
    if not paths and not follow_:
        click.echo("no sessions yet", err=True)
        return
    as_json = as_json or _format(listing.options) == "json"
    sizes = {path: path.stat().st_size for path in paths}
    show = _tail_printer(as_json, tuple(p.stem for p in paths), listing.options)
    for item in review.last_entries(paths, lines, wanted):
        show(item)
    if not follow_:
        return
    if session_id is not None:
        stream = review.follow(paths[0], start=sizes[paths[0]])
    else:
        (directory / "Sessions").mkdir(exist_ok=True)
        stream = review.follow_dir(directory / "Sessions")
    for item in stream:
        if isinstance(item, review.Malformed) or wanted.accepts(item.record):
            show(item)


def _tail_printer(
    as_json: bool, sessions: tuple[str, ...], options: dict[str, Any]
) -> Callable[[Entry | Malformed], None]:
    """Return the function that prints one record for ``tail``."""
    from statetrace_guard.audit.review import Malformed, record_row  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.audit.table import Layout  # noqa: PLC0415 - lazy CLI

    layout = Layout(_width(), sessions, bool(options.get("wide")), _mark())

    def show(item: Entry | Malformed) -> None:
        if isinstance(item, Malformed):
            click.echo(item.describe(), err=True)
        elif as_json:
            click.echo(json.dumps(item.record, ensure_ascii=False, sort_keys=True))
        else:
            click.echo(layout.line(record_row(item.record)))

    return show
