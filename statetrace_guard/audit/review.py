"""Reading the trail for operators: ``guard log``, ``log summary``, ``log tail``.

Pure functions over records read back as plain dicts, streamed: memory is
bounded by what is printed at once, not by the size of a log (a 200 MB
session is read line by line). Reading is tolerant: a malformed line becomes a
:class:`Malformed` entry naming its file and line, and reading goes on.
Nothing here checks the chain; that is ``guard verify``.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from statetrace_guard.audit.completeness import open_start_of, still_running
from statetrace_guard.audit.netops import host_of
from statetrace_guard.audit.reasons import deciding_text

__all__ = [
    "COMMAND_EVENTS",
    "EVENT_TAGS",
    "Entry",
    "Filter",
    "Malformed",
    "Row",
    "Summary",
    "SummaryBuilder",
    "follow",
    "follow_dir",
    "last_entries",
    "merged_entries",
    "newest_session",
    "parse_time",
    "read_entries",
    "record_row",
    "record_time",
    "rows",
    "session_files",
]

COMMAND_EVENTS = frozenset({"command.started", "command.finished", "command.blocked"})
# Session events shown as rows of their own, with the tag the table prints.
EVENT_TAGS = {
    "session.started": "*start",
    "session.ended": "*end",
    "session.escalated": "*esc",
    "approval.requested": "*esc",
    "approval.granted": "*appr",
    "approval.used": "*appr",
    "approval.denied": "*deny",
    "session.override": "*ovrd",
    "session.halted": "*halt",
    "session.resumed": "*resum",
    "file.edited": "*edit",
    "job.started": "*job",
    "job.ended": "*job",
    "log.recovered": "*torn",
    "network.connection": "*net",  # one per connection through the L3 proxy
    "network.proxy": "*net",
}
_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_READ_BLOCK = 1 << 16


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


def record_time(record: dict[str, Any]) -> datetime | None:
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


def _read_file(path: Path) -> Iterator[Entry | Malformed]:
    """Yield one file's records line by line (never the whole file at once)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Malformed(path, 0, f"unreadable: {exc.strerror or exc}")
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse_line(path, number, line)


def read_entries(paths: Iterable[Path]) -> Iterator[Entry | Malformed]:
    """Yield every record of the files in file order; malformed lines as Malformed."""
    for path in paths:
        yield from _read_file(path)


def _sort_time(item: Entry | Malformed) -> str:
    """The text a record sorts by: its ``ts`` (RFC 3339 UTC sorts as text)."""
    if isinstance(item, Malformed):
        return ""
    value = item.record.get("ts", item.record.get("Timestamp"))
    return value if isinstance(value, str) else ""


def _first_time(path: Path) -> str:
    """The time of a file's first record (its header), "" when unknown."""
    try:
        with path.open("rb") as handle:
            first = handle.readline()
    except OSError:
        return ""
    item = _parse_line(path, 1, first) if first.strip() else None
    return _sort_time(item) if item is not None else ""


@dataclass(order=True)
class _Head:
    """A file's next record in the merge, ordered by time, then file rank."""

    when: str
    rank: int
    item: Entry | Malformed = field(compare=False)
    rest: Iterator[Entry | Malformed] = field(compare=False)


def merged_entries(paths: Iterable[Path]) -> Iterator[Entry | Malformed]:
    """Yield the records of several files in time order, streaming.

    Each file is in time order already (the chain requires it), so this is a
    k-way merge. Files are opened only once the merge reaches their first
    record, so open files and memory grow with the sessions that overlap in
    time, not with the number of files. A record without a time keeps its
    place after the one before it in its file.
    """
    pending = sorted((_first_time(path), rank, path) for rank, path in enumerate(paths))
    heap: list[_Head] = []
    index = 0
    while heap or index < len(pending):
        while index < len(pending) and (not heap or pending[index][0] <= heap[0].when):
            _push(heap, pending[index][1], _read_file(pending[index][2]), "")
            index += 1
        if not heap:
            continue
        head = heapq.heappop(heap)
        yield head.item
        _push(heap, head.rank, head.rest, head.when)


def _push(
    heap: list[_Head], rank: int, rest: Iterator[Entry | Malformed], before: str
) -> None:
    """Put a file's next record on the merge heap (nothing when it is done)."""
    item = next(rest, None)
    if item is not None:
        heapq.heappush(heap, _Head(_sort_time(item) or before, rank, item, rest))


def _tail_lines(path: Path, count: int) -> list[tuple[int, bytes]]:
    """Return the last ``count`` non-empty lines of a file with their offsets.

    Reads backwards in blocks, so a large file costs only its tail.
    """
    lines: list[tuple[int, bytes]] = []
    with path.open("rb") as handle:
        end = handle.seek(0, 2)
        buffer = b""
        while end > 0 and len(lines) <= count:
            start = max(0, end - _READ_BLOCK)
            handle.seek(start)
            buffer = handle.read(end - start) + buffer
            end = start
            lines = _offsets(buffer, start, partial_first=end > 0)
    return lines[-count:] if count > 0 else []


def _offsets(
    buffer: bytes, base: int, *, partial_first: bool
) -> list[tuple[int, bytes]]:
    """Split ``buffer`` (starting at file offset ``base``) into (offset, line)."""
    found: list[tuple[int, bytes]] = []
    position = 0
    for line in buffer.split(b"\n"):
        if line.strip() and not (partial_first and position == 0):
            found.append((base + position, line))
        position += len(line) + 1
    return found


def _line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line starting at ``offset`` (counted in blocks)."""
    newlines = 0
    with path.open("rb") as handle:
        while handle.tell() < offset:
            newlines += handle.read(min(_READ_BLOCK, offset - handle.tell())).count(
                b"\n"
            )
    return newlines + 1


def _tail_entry(path: Path, offset: int, line: bytes) -> Entry | Malformed:
    item = _parse_line(path, 0, line)
    if isinstance(item, Malformed):
        return Malformed(path, _line_number(path, offset), item.reason)
    return item


def last_entries(
    paths: Iterable[Path], count: int, wanted: Filter | None = None
) -> list[Entry | Malformed]:
    """Return the last ``count`` records of the files together, in time order.

    With a filter that restricts more than the session, the files are read
    whole (streaming): the last matching records may lie anywhere.
    """
    chosen: deque[Entry | Malformed] = deque(maxlen=max(count, 0))
    if wanted is not None and wanted.restricts_records():
        for item in merged_entries(paths):
            if isinstance(item, Malformed) or wanted.accepts(item.record):
                chosen.append(item)
        return list(chosen)
    tails: list[Entry | Malformed] = []
    for path in paths:
        try:
            found = _tail_lines(path, count)
        except OSError as exc:
            tails.append(Malformed(path, 0, f"unreadable: {exc.strerror or exc}"))
            continue
        tails.extend(_tail_entry(path, offset, line) for offset, line in found)
    tails.sort(key=_sort_time)
    chosen.extend(tails)
    return list(chosen)


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

    def restricts_records(self) -> bool:
        """True when the filter picks records, not only files (sessions)."""
        return any(
            value is not None
            for value in (
                self.task,
                self.since,
                self.until,
                self.decision,
                self.effect,
                self.grep,
            )
        )

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
        moment = record_time(record)
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment <= self.until
        )

    def _what(self, record: dict[str, Any]) -> bool:
        """Check decision, effect and text.

        A decision or effect filter keeps command records only: session
        events have neither.
        """
        if self.decision is not None and record.get("decision") != self.decision:
            return False
        if self.effect is not None and self.effect not in (record.get("effects") or []):
            return False
        if self.grep is None:
            return True
        return self.grep.lower() in json.dumps(record, ensure_ascii=False).lower()


@dataclass(frozen=True, slots=True)
class Row:
    """One line of ``guard log``: a command, or a session event.

    ``state`` is ``finished``, ``blocked``, ``unfinished`` (no finish yet,
    its guard still runs) or ``dangling`` (no finish, and the guard that
    started it is gone: the guard or the machine stopped while it ran) for
    commands and ``event`` for the rest; ``record`` is the command's last record (its
    ``command.finished`` when it finished) or the event's; ``started`` is the
    ``command.started`` a finished row replaced (it alone has ``enforcement``).
    """

    record: dict[str, Any]
    state: str
    started: dict[str, Any] | None = None

    @property
    def is_command(self) -> bool:
        """True for a command row."""
        return self.state != "event"

    @property
    def reason(self) -> str | None:
        """The deciding reason of a blocked command (None otherwise)."""
        if self.state != "blocked":
            return None
        return deciding_text(self.record)


def record_row(record: dict[str, Any]) -> Row:
    """Return the row one record makes on its own (``tail`` shows every record)."""
    state = {
        "command.started": "unfinished",
        "command.finished": "finished",
        "command.blocked": "blocked",
    }.get(str(record.get("event")), "event")
    return Row(record, state)


# Bookkeeping records no reader needs as a row of their own.
_QUIET_EVENTS = frozenset({"log.header", "session.denial"})


def _is_shown_event(record: dict[str, Any], used: set[str], every: bool) -> bool:
    """True for events that get a row; one per approval's first use.

    Known session events always; with ``every``, any event but bookkeeping.
    """
    event = str(record.get("event"))
    if event not in EVENT_TAGS and (not every or event in _QUIET_EVENTS):
        return False
    if event == "approval.used":
        approval = str(record.get("approval_id"))
        if approval in used:
            return False
        used.add(approval)
    return True


@dataclass
class _Slot:
    """A row waiting in order for its command to finish."""

    key: tuple[str, ...] | None
    row: Row


def rows(
    entries: Iterable[Entry], pending_limit: int = 10_000, *, every_event: bool = False
) -> Iterator[Row]:
    """Turn records into rows, in the order commands started, streaming.

    A ``command.finished`` replaces its ``command.started`` (same session, pid
    and argv). Rows wait until the commands before them finished; at most
    ``pending_limit`` wait, after which the oldest is shown as ``unfinished``
    (a finish that comes later gets a row of its own), so memory stays bounded
    even when a start never gets its finish. ``every_event`` also gives events
    this version does not know a row (``guard report`` shows them).
    """
    queue: deque[_Slot] = deque()
    waiting: dict[tuple[str, ...], deque[_Slot]] = {}
    used: set[str] = set()
    for entry in entries:
        _place(entry.record, queue, waiting, (used, every_event))
        yield from _release(queue, waiting, pending_limit)
    yield from _release(queue, waiting, 0, settle=True)


def _place(
    record: dict[str, Any],
    queue: deque[_Slot],
    waiting: dict[tuple[str, ...], deque[_Slot]],
    shown: tuple[set[str], bool],
) -> None:
    """Queue a record's row, or complete the row of the command it finishes."""
    event = record.get("event")
    if event == "command.started":
        slot = _Slot(_command_key(record), Row(record, "unfinished"))
        waiting.setdefault(_command_key(record), deque()).append(slot)
        queue.append(slot)
    elif event == "command.finished" and _take(waiting, record):
        return
    elif event in COMMAND_EVENTS:
        state = "finished" if event == "command.finished" else "blocked"
        queue.append(_Slot(None, Row(record, state)))
    elif _is_shown_event(record, *shown):
        queue.append(_Slot(None, Row(record, "event")))


def _take(waiting: dict[tuple[str, ...], deque[_Slot]], record: dict[str, Any]) -> bool:
    """Fill the waiting start a finish names (else the oldest of that command).

    False when none waits.
    """
    key = _command_key(record)
    slots = waiting.get(key)
    if not slots:
        return False
    slot = _named(slots, record.get("started_seq"))
    if not slots:
        del waiting[key]
    slot.row, slot.key = Row(record, "finished", slot.row.record), None
    return True


def _named(slots: deque[_Slot], started_seq: object) -> _Slot:
    """Take the slot of the start with seq ``started_seq`` (else the oldest)."""
    if isinstance(started_seq, int):
        for slot in slots:
            if slot.row.record.get("seq") == started_seq:
                slots.remove(slot)
                return slot
    return slots.popleft()


def _command_key(record: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(record.get("session_id")),
        str(record.get("pid")),
        json.dumps(record.get("argv")),
    )


def _release(
    queue: deque[_Slot],
    waiting: dict[tuple[str, ...], deque[_Slot]],
    limit: int,
    *,
    settle: bool = False,
) -> Iterator[Row]:
    """Yield the finished rows at the head of the queue (and overflow).

    ``settle`` (at the end of the records) marks open starts whose guard is
    gone dangling; a start let go for the limit may still get its finish.
    """
    while queue and (queue[0].key is None or len(queue) > limit):
        slot = queue.popleft()
        if slot.key is not None:
            waiting[slot.key].popleft()
            if not waiting[slot.key]:
                del waiting[slot.key]
            yield _settled(slot.row) if settle else slot.row
            continue
        yield slot.row


def _settled(row: Row) -> Row:
    """An unfinished row whose guard is gone is dangling."""
    if still_running(open_start_of(row.record)):
        return row
    return Row(row.record, "dangling", row.started)


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``guard log summary`` reports.

    ``blocked`` and ``failures`` are grouped by command text: (command,
    deciding reason or exit code) -> count, in order of first appearance.
    """

    ran: Counter[tuple[str, str]]
    blocked_counts: Counter[tuple[str, str]]
    blocked: dict[tuple[str, str], int]
    hosts: Counter[str]
    slowest: tuple[Row, ...]
    failures: dict[tuple[str, str], int]
    unfinished: int

    def as_json(self) -> dict[str, Any]:
        """Return the summary as one JSON object."""
        return {
            "schema_version": 1,
            "per_level_and_effect": [
                {
                    "level": level,
                    "effect": effect,
                    "ran": self.ran[(level, effect)],
                    "blocked": self.blocked_counts[(level, effect)],
                }
                for level, effect in sorted(set(self.ran) | set(self.blocked_counts))
            ],
            "blocked": [
                {"command": command, "deciding_reason": reason, "count": count}
                for (command, reason), count in self.blocked.items()
            ],
            "hosts": dict(self.hosts.most_common()),
            "slowest": [row.record for row in self.slowest],
            "failures": [
                {"command": command, "exit": code, "count": count}
                for (command, code), count in self.failures.items()
            ],
            "unfinished": self.unfinished,
        }


def _hosts(record: dict[str, Any]) -> Iterator[str]:
    """Yield the hosts of a record's URLs (bare host names as they are)."""
    for url in record.get("urls") or []:
        host = host_of(str(url))
        if host:
            yield host


@dataclass
class SummaryBuilder:
    """Accumulates a :class:`Summary` from rows one at a time (bounded memory).

    ``command_text`` turns a record into the command as shown; grouping by it
    keeps memory to the distinct blocked and failing commands.
    """

    command_text: Callable[[dict[str, Any]], str]
    slowest_count: int = 5
    ran: Counter[tuple[str, str]] = field(default_factory=Counter)
    blocked_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    blocked: dict[tuple[str, str], int] = field(default_factory=dict)
    hosts: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    unfinished: int = 0
    _seen: int = 0
    _slow: list[tuple[float, int, Row]] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Count one row (event rows are not counted)."""
        if not row.is_command:
            return
        record = row.record
        target = self.blocked_counts if row.state == "blocked" else self.ran
        level = str(record.get("level", "?"))
        for effect in record.get("effects") or ["read"]:
            target[(level, str(effect))] += 1
        self.hosts.update(_hosts(record))
        self.unfinished += row.state in {"unfinished", "dangling"}
        if row.state == "blocked":
            key = (self.command_text(record), row.reason or "")
            self.blocked[key] = self.blocked.get(key, 0) + 1
        self._timing(row)
        self._failure(row)

    def _timing(self, row: Row) -> None:
        duration = row.record.get("duration_ms")
        if not isinstance(duration, int | float):
            return
        self._seen += 1
        item = (float(duration), -self._seen, row)  # the earlier first on a tie
        if len(self._slow) < self.slowest_count:
            heapq.heappush(self._slow, item)
        elif item[:2] > self._slow[0][:2]:
            heapq.heapreplace(self._slow, item)

    def _failure(self, row: Row) -> None:
        record = row.record
        failed = row.state == "finished" and record.get("exit_code") not in (0, None)
        if not failed and not record.get("timed_out"):
            return
        code = "timeout" if record.get("timed_out") else str(record.get("exit_code"))
        key = (self.command_text(record), code)
        self.failures[key] = self.failures.get(key, 0) + 1

    def build(self) -> Summary:
        """Return the summary of everything added."""
        slowest = tuple(row for _, _, row in sorted(self._slow, reverse=True))
        return Summary(
            self.ran,
            self.blocked_counts,
            self.blocked,
            self.hosts,
            slowest,
            self.failures,
            self.unfinished,
        )


def _complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Read the complete lines after ``offset``; return them and the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except OSError:
        return [], offset
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return complete.split(b"\n")[:-1], offset + len(complete)


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
        lines, offset = _complete_lines(path, offset)
        for line in lines:
            number += 1
            if line.strip():
                yield _parse_line(path, number, line)
        if stop():
            return
        sleep(poll)


def follow_dir(
    directory: Path,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Entry | Malformed]:
    """Yield records appended to any ``*.jsonl`` file in ``directory`` from now on.

    Files that exist now are followed from their current end; files created
    later from their start.
    """
    offsets = {path: path.stat().st_size for path in directory.glob("*.jsonl")}
    while True:
        for path in sorted(directory.glob("*.jsonl")):
            lines, offsets[path] = _complete_lines(path, offsets.get(path, 0))
            for line in lines:
                if line.strip():
                    yield _parse_line(path, 0, line)
        if stop():
            return
        sleep(poll)
