"""``guard report``: write the self-contained HTML report of sessions."""

from __future__ import annotations

import json
import webbrowser
from datetime import datetime
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, log_dir_option, policy_option
from statetrace_guard.errors import AuditError, UsageError

__all__ = ["report"]


def _time(text: str | None, name: str) -> datetime | None:
    from statetrace_guard.audit.review import parse_time  # noqa: PLC0415 - lazy CLI

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def _pick_sessions(
    log_dir: Path, wanted: tuple[str, ...], since: datetime | None
) -> list[Path]:
    """The session files to report: those named, else by time, else the newest."""
    from statetrace_guard.audit.review import session_files  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.audit.table import short_session_ids  # noqa: PLC0415 - lazy CLI

    files = session_files(log_dir) if (log_dir / "Sessions").is_dir() else []
    if not files:
        raise AuditError(
            f"no session logs under {log_dir / 'Sessions'}",
            hint="run guard inside the workspace, or pass --log-dir",
        )
    if not wanted:
        if since is None:
            return files[-1:]
        floor = since.timestamp()
        return [path for path in files if path.stat().st_mtime >= floor]
    names = short_session_ids(path.stem for path in files)
    chosen: list[Path] = []
    for session in wanted:
        found = [p for p in files if session in {p.stem, names.get(p.stem)}]
        if len(found) != 1:
            raise UsageError(f"no session {session} in {log_dir / 'Sessions'}")
        chosen.append(found[0])
    return chosen


def _default_out(sessions: list[Path]) -> Path:
    name = sessions[0].stem if len(sessions) == 1 else f"{len(sessions)}-sessions"
    return Path(f"guard-report-{name}.html")


@click.command()
@click.option(
    "--session",
    "sessions",
    multiple=True,
    help="A session to report (repeatable) [default: the newest, or every "
    "session with records in --since/--until].",
)
@click.option("--since", help="From TIME (RFC 3339, a date, or 30m/2h/1d ago).")
@click.option("--until", help="Up to TIME.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write [default: guard-report-<session>.html here]; "
    "- writes to stdout.",
)
@click.option("--open", "open_", is_flag=True, help="Open the report in a browser.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report's data instead."
)
@click.option("--no-verify", is_flag=True, help="Do not check the logs' chains.")
@policy_option
@log_dir_option
@guard_errors
def report(
    sessions: tuple[str, ...],
    since: str | None,
    until: str | None,
    out: Path | None,
    open_: bool,
    as_json: bool,
    no_verify: bool,
    policy: Path | None,
    log_dir: Path | None,
) -> None:
    """Write one self-contained HTML report of a session or a time range.

    The page needs no network and no other file (open it from disk or keep it
    as a CI artifact): header with task, plan, level history and every log's
    chain status; a timeline; every command with its deciding reason; test
    runs with their real outcome; file edits, network hosts and connections;
    L2 overrides and whether they were reset. Its data is one JSON document
    in the page (the element with id guard-report-data); --json prints it.
    """
    from statetrace_guard.invocation import resolve_invocation  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.report.data import Scope, build  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.report.page import render  # noqa: PLC0415 - lazy CLI
    from statetrace_guard.sessions.testruns import TestPrograms  # noqa: PLC0415 - lazy CLI

    invocation = resolve_invocation(level=None, policy=policy, log_dir=log_dir)
    directory = invocation.log_dir
    if not directory.is_dir():
        raise AuditError(
            f"no log directory at {directory}",
            hint="run guard inside the workspace, or pass --log-dir",
        )
    start, end = _time(since, "--since"), _time(until, "--until")
    chosen = _pick_sessions(directory, sessions, start)
    netops = tuple(sorted((directory / "NetOps").glob("*.json")))
    scope = Scope(tuple(chosen), start, end, directory, netops)
    document = build(scope, TestPrograms.of(invocation.policy), verify=not no_verify)
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False, sort_keys=True))
        return
    title = "guard report: " + ", ".join(document["scope"]["sessions"] or ["(empty)"])
    page = render(document, title)
    _write(page, out or _default_out(chosen), open_)


def _write(page: str, out: Path, open_: bool) -> None:
    if str(out) == "-":
        click.echo(page, nl=False)
        return
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"cannot write {out}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {out} ({out.stat().st_size:,} bytes)")
    if open_:
        webbrowser.open(out.resolve().as_uri())
