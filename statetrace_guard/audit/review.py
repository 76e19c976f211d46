"""Reading the trail for operators: ``guard log``, ``log summary``, ``log tail``.

Pure functions over records read back as plain dicts. Reading is tolerant: a
malformed line becomes a :class:`Malformed` entry naming its file and line,
and reading goes on. Nothing here checks the chain; that is ``guard verify``.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from statetrace_guard.audit.netops import host_of

__all__ = [
    "COMMAND_EVENTS",
    "Entry",
    "Filter",
    "Malformed",
    "Row",
    "Summary",
    "command_rows",
    "follow",
    "format_row",
    "format_summary",
    "newest_session",
    "parse_time",
    "read_entries",
    "session_files",
    "summarize",
]

COMMAND_EVENTS = frozenset({"command.started", "command.finished", "command.blocked"})
_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One record read back, with where it came from."""

    path: Path
    line: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that could not be read as a record; reported and skipped."""

    path: Path
    line: int
    reason: str

    def describe(self) -> str:
        """Return ``file:line: reason``."""
        return f"{self.path}:{self.line}: skipped malformed line ({self.reason})"


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """Parse ``--since``/``--until``: RFC 3339, a date, or ``30m``/``2h``/``1d`` ago.

    Raises:
        ValueError: the text is none of those.
    """
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _record_time(record: dict[str, Any]) -> datetime | None:
    """Return a record's time as a datetime, None when absent or bad."""
    value = record.get("ts", record.get("Timestamp"))
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def session_files(log_dir: Path) -> list[Path]:
    """Return the session logs, oldest change first."""
    files = list((log_dir / "Sessions").glob("*.jsonl"))
    return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))


def newest_session(log_dir: Path) -> Path | None:
    """Return the most recently changed session log, if any."""
    files = session_files(log_dir)
    return files[-1] if files else None


def _parse_line(path: Path, number: int, line: bytes) -> Entry | Malformed:
    """Parse one line into an Entry or a Malformed report."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        return Malformed(path, number, f"not JSON: {exc.__class__.__name__}")
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return Malformed(path, number, "not a record (no event)")
    return Entry(path, number, record)


def read_entries(paths: Iterable[Path]) -> Iterator[Entry | Malformed]:
    """Yield every record of the files in order; malformed lines as Malformed."""
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield Malformed(path, 0, f"unreadable: {exc.strerror or exc}")
            continue
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield _parse_line(path, number, line)


@dataclass(frozen=True, slots=True)
class Filter:
    """What ``guard log`` shows; None means no restriction."""

    session: str | None = None
    task: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    effect: str | None = None
    grep: str | None = None

    def accepts(self, record: dict[str, Any]) -> bool:
        """Return True when the record passes every given condition."""
        checks: tuple[Callable[[dict[str, Any]], bool], ...] = (
            self._who,
            self._when,
            self._what,
        )
        return all(check(record) for check in checks)

    def _who(self, record: dict[str, Any]) -> bool:
        """Check session and task."""
        if self.session is not None and record.get("session_id") != self.session:
            return False
        tasks = [record.get("task_id"), *(record.get("task_ids") or [])]
        return self.task is None or self.task in tasks

    def _when(self, record: dict[str, Any]) -> bool:
        """Check the time window."""
        if self.since is None and self.until is None:
            return True
        moment = _record_time(record)
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment <= self.until
        )

    def _what(self, record: dict[str, Any]) -> bool:
        """Check decision, effect and text."""
        if self.decision is not None and record.get("decision") != self.decision:
            return False
        if self.effect is not None and self.effect not in (record.get("effects") or []):
            return False
        if self.grep is None:
            return True
        return self.grep.lower() in json.dumps(record, ensure_ascii=False).lower()


@dataclass(frozen=True, slots=True)
class Row:
    """One command as ``guard log`` lists it."""

    record: dict[str, Any]
    state: str  # "finished", "blocked" or "unfinished"

    @property
    def command(self) -> str:
        """Return the command line, shell-quoted."""
        return shlex.join(str(word) for word in self.record.get("argv") or [])


def command_rows(entries: Iterable[Entry]) -> list[Row]:
    """Turn command records into one row per command.

    A ``command.finished`` row replaces its ``command.started`` (same session,
    pid and argv); a started record with no finished one is ``unfinished``.
    """
    rows: list[Row] = []
    open_rows: dict[tuple[str, ...], list[int]] = {}
    for entry in entries:
        record, event = entry.record, entry.record.get("event")
        if event not in COMMAND_EVENTS:
            continue
        key = (
            str(record.get("session_id")),
            str(record.get("pid")),
            json.dumps(record.get("argv")),
        )
        if event == "command.started":
            open_rows.setdefault(key, []).append(len(rows))
            rows.append(Row(record, "unfinished"))
        elif event == "command.finished" and open_rows.get(key):
            rows[open_rows[key].pop()] = Row(record, "finished")
        else:
            rows.append(
                Row(record, "finished" if event == "command.finished" else "blocked")
            )
    return rows


def _clip(text: str, width: int) -> str:
    """Cut text to ``width`` characters, marking the cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "~"


def format_row(row: Row, width: int = 80) -> str:
    """Return one aligned line for a command, cut to ``width`` columns.

    Columns: time (``MM-DD HH:MM``), session (its last 8 characters), level,
    decision (``BLOCK`` when blocked, ``run..`` while unfinished), effects
    beyond ``read``, exit code, duration, command.
    """
    record = row.record
    ts = str(record.get("ts", ""))
    when = f"{ts[5:10]} {ts[11:16]}" if len(ts) >= 16 else ts  # noqa: PLR2004 - RFC 3339
    decision = {"blocked": "BLOCK", "unfinished": "run.."}.get(row.state, "allow")
    code = record.get("exit_code")
    duration = record.get("duration_ms")
    head = (
        f"{when:11} {_clip_left(str(record.get('session_id', '')), 8):8} "
        f"{record.get('level', '')!s:2} {decision:5} {_effects(record):9} "
        f"{'-' if code is None else code!s:>3} "
        f"{_duration(duration) if isinstance(duration, int | float) else '-':>6} "
    )
    return head + _clip(row.command, max(width - len(head), 10))


def _effects(record: dict[str, Any]) -> str:
    """Return the effects beyond ``read`` (``read`` alone when that is all), cut."""
    effects = [str(e) for e in record.get("effects") or []]
    shown = [e for e in effects if e != "read"] or effects
    return _clip(",".join(shown), 9)


def _clip_left(text: str, width: int) -> str:
    """Keep the end of ``text`` (session ids differ at the end)."""
    return text if len(text) <= width else "~" + text[-(width - 1) :]


def _duration(ms: float) -> str:
    """Format milliseconds compactly: ``850ms``, ``12.3s``, ``4m05s``."""
    if ms < 1000:  # noqa: PLR2004 - one second
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:  # noqa: PLR2004 - one minute
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``guard log summary`` reports."""

    ran: Counter[tuple[str, str]]
    blocked: Counter[tuple[str, str]]
    blocked_rows: tuple[Row, ...]
    hosts: Counter[str]
    slowest: tuple[Row, ...]
    failures: tuple[Row, ...]


def _hosts(record: dict[str, Any]) -> Iterator[str]:
    """Yield the hosts of a record's URLs (bare host names as they are)."""
    for url in record.get("urls") or []:
        host = host_of(str(url))
        if host:
            yield host


def summarize(rows: Sequence[Row], slowest: int = 5) -> Summary:
    """Count commands run and blocked per (level, effect) and collect the rest."""
    ran: Counter[tuple[str, str]] = Counter()
    blocked: Counter[tuple[str, str]] = Counter()
    hosts: Counter[str] = Counter()
    for row in rows:
        target = blocked if row.state == "blocked" else ran
        level = str(row.record.get("level", "?"))
        for effect in row.record.get("effects") or ["read"]:
            target[(level, str(effect))] += 1
        hosts.update(_hosts(row.record))
    timed = [
        row for row in rows if isinstance(row.record.get("duration_ms"), int | float)
    ]
    timed.sort(key=lambda row: float(row.record["duration_ms"]), reverse=True)
    failures = tuple(
        row
        for row in rows
        if (row.state == "finished" and row.record.get("exit_code") not in (0, None))
        or row.record.get("timed_out")
    )
    return Summary(
        ran,
        blocked,
        tuple(r for r in rows if r.state == "blocked"),
        hosts,
        tuple(timed[:slowest]),
        failures,
    )


def format_summary(summary: Summary, width: int = 80) -> list[str]:
    """Render a summary as lines of text."""
    lines = ["commands per level and effect (run / blocked):"]
    keys = sorted(set(summary.ran) | set(summary.blocked))
    lines += [
        f"  {level:3} {effect:10} {summary.ran[(level, effect)]:6} "
        f"{summary.blocked[(level, effect)]:6}"
        for level, effect in keys
    ]
    lines.append(f"blocked commands ({len(summary.blocked_rows)}):")
    for row in summary.blocked_rows:
        reasons = "; ".join(str(r) for r in row.record.get("reasons") or [])
        lines.append("  " + _clip(f"{row.command}  <- {reasons}", width - 2))
    lines.append(
        "network hosts: "
        + (
            ", ".join(
                f"{host} ({count})" for host, count in summary.hosts.most_common()
            )
            or "none"
        )
    )
    lines.append("slowest:")
    lines += ["  " + format_row(row, width - 2) for row in summary.slowest]
    lines.append(f"failures ({len(summary.failures)}):")
    lines += ["  " + format_row(row, width - 2) for row in summary.failures]
    return lines


def follow(
    path: Path,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    start: int = 0,
) -> Iterator[Entry | Malformed]:
    """Yield the records of ``path`` from byte ``start``, then new ones as they come.

    Only complete lines are read; a torn tail waits until it is recovered.
    ``stop`` ends the loop (tests); otherwise it runs until interrupted.
    Line numbers count from ``start``.
    """
    offset, number = start, 0
    while True:
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except OSError:
            chunk = b""
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for line in complete.split(b"\n")[:-1]:
            number += 1
            if line.strip():
                yield _parse_line(path, number, line)
        offset += len(complete)
        if stop():
            return
        sleep(poll)
