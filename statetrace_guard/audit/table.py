r"""How ``guard log`` lays rows out: a table, JSON Lines or CSV.

The table reads at a glance at 80 columns and in pipes: a header row; one
line per row whatever the command holds (newlines and other control
characters are shown escaped, ``$'a\nb'``); the command cut from the middle
so its program and, on a blocked row, the part that blocked it stay visible,
followed by the deciding reason; session events as rows of their own. With no
width (no terminal and no ``COLUMNS``) nothing is cut. ``wide`` shows full
times and session ids and cuts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from statetrace_guard.audit.reasons import deciding, deciding_text
from statetrace_guard.audit.review import EVENT_TAGS, Row

__all__ = [
    "CSV_COLUMNS",
    "Layout",
    "brief_command",
    "command_text",
    "cut",
    "event_text",
    "one_line",
    "row_fields",
    "session_day",
    "short_session_ids",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SAFE_WORD = re.compile(r"[\w@%+=:,./-]+")
_DOUBLE_UNSAFE = re.compile(r'["$`\\!]')
_PATTERN_ID = re.compile(r"^(\d{4})-(\d{2}-\d{2})_session-(\d+)$")
_MIN_COMMAND = 20
CSV_COLUMNS = (
    "ts",
    "session_id",
    "level",
    "row",
    "event",
    "effects",
    "exit_code",
    "duration_ms",
    "command",
    "reason",
)


def one_line(text: str) -> str:
    r"""Escape newlines and other control characters (``\n``, ``\t``, ``\x1b``)."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in _ESCAPES:
            return _ESCAPES[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"  # noqa: PLR2004 - one byte

    return _CONTROL.sub(escape, text)


def _ansi_c(word: str) -> str:
    r"""Quote as bash's ``$'...'``, which spells control characters (``\n``)."""
    body = word.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + one_line(body) + "'"


def _quote(word: str) -> str:
    """Quote a word for reading: bare, 'single', "double", else ``$'...'``.

    The result is valid shell for the same word, and always one line.
    """
    if word and _SAFE_WORD.fullmatch(word):
        return word
    if _CONTROL.search(word):
        return _ansi_c(word)
    if "'" not in word:
        return f"'{word}'"
    if not _DOUBLE_UNSAFE.search(word):
        return f'"{word}"'
    return _ansi_c(word)


def command_text(record: dict[str, Any]) -> str:
    """Return a record's argv as one readable line (quoted, control chars escaped)."""
    return one_line(" ".join(_quote(str(word)) for word in record.get("argv") or []))


def brief_command(argv: Iterable[str], limit: int = 100) -> str:
    """Return a command for a report line: one line, heredocs and length marked.

    A script with a heredoc keeps its first line and says how many lines
    follow (``[heredoc: 3 more lines]``); anything longer than ``limit`` is cut
    from the middle with the number of characters left out.
    """
    words = [str(word) for word in argv]
    body = next((w for w in words if "\n" in w and "<<" in w), None)
    if body is not None:
        first, _, rest = body.partition("\n")
        more = rest.count("\n") + (0 if rest.endswith("\n") else 1)
        shown = [
            f"{first} [heredoc: {more} more lines]" if w is body else w for w in words
        ]
        text = " ".join(_quote(word) for word in shown)
    else:
        text = " ".join(_quote(word) for word in words)
    text = one_line(text)
    if len(text) <= limit:
        return text
    keep = limit - 16
    head = keep * 2 // 3
    left_out = len(text) - keep
    return f"{text[:head]} …[{left_out} chars]… {text[len(text) - (keep - head) :]}"


def cut(text: str, width: int, focus: int | None = None, mark: str = "…") -> str:
    """Cut ``text`` to ``width`` characters from the middle, marking the cut.

    The start (the program) is always kept. With ``focus`` (an index in
    ``text``), the cut keeps the text from just before ``focus`` on; otherwise
    it keeps the start and the end.
    """
    if len(text) <= width:
        return text
    if width <= len(mark) * 2 + 2:
        return text[: max(width - len(mark), 0)] + mark
    head = min(_program_length(text), width // 3)
    if focus is not None and focus + 8 <= width - len(mark):
        return text[: width - len(mark)] + mark
    if focus is None:
        keep = width - len(mark)
        head = max(head, keep * 3 // 5)
        return text[:head] + mark + text[len(text) - (keep - head) :]
    start = max(focus - 2, head)
    room = width - head - len(mark)
    window = text[start : start + room]
    if start + room < len(text):
        window = window[: room - len(mark)] + mark
    return text[:head] + mark + window


def _program_length(text: str) -> int:
    """Length of the program and a short option after it (``bash -c '``)."""
    words = text.split(" ", 2)
    length = len(words[0])
    if len(words) > 1 and words[1].startswith("-") and len(words[1]) <= 12:  # noqa: PLR2004 - an option
        length += 1 + len(words[1]) + 2
    return min(length, len(text))


def _focus(text: str, record: dict[str, Any]) -> int | None:
    """Where the deciding part's program appears in the command text."""
    part = deciding(record)
    if part is None or part.name is None:
        return None
    word = re.compile(rf"(?<![\w.-]){re.escape(part.name)}(?![\w.-])")
    found = [match.start() for match in word.finditer(text) if match.start() > 0]
    return found[0] if found else None


def short_session_ids(ids: Iterable[str]) -> dict[str, str]:
    """Return a short, unambiguous name for each session id shown together.

    Ids of the form ``2026-11-24_session-0001`` become ``#0001`` when they
    share one day, ``11-24#0001`` when they share one year; other ids stay
    whole.
    """
    unique = sorted(set(ids))
    matches = [_PATTERN_ID.match(session) for session in unique]
    found = [m for m in matches if m]
    if len(found) != len(unique) or len({m.group(1) for m in found}) > 1:
        return {session: session for session in unique}
    one_day = len({m.group(2) for m in found}) == 1
    return {
        m.group(0): (f"#{m.group(3)}" if one_day else f"{m.group(2)}#{m.group(3)}")
        for m in found
    }


def session_day(ids: Iterable[str]) -> str | None:
    """The day every session id names (``2026-11-24``), if they share one."""
    days = set()
    for session in ids:
        match = _PATTERN_ID.match(session)
        if match is None:
            return None
        days.add(f"{match.group(1)}-{match.group(2)}")
    return days.pop() if len(days) == 1 else None


def _effects(record: dict[str, Any]) -> str:
    """The effects beyond ``read`` (``read`` alone when that is all)."""
    effects = [str(e) for e in record.get("effects") or []]
    shown = [e for e in effects if e != "read"] or effects
    if len(shown) == 1:
        return shown[0]
    return ",".join(effect[:3] for effect in shown)


def _duration(ms: object) -> str:
    """Format milliseconds compactly: ``850ms``, ``12.3s``, ``4m05s``."""
    if not isinstance(ms, int | float):
        return "-"
    if ms < 1000:  # noqa: PLR2004 - one second
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:  # noqa: PLR2004 - one minute
        return f"{seconds:.1f}s"
    if seconds < 6000:  # noqa: PLR2004 - 100 minutes fit 5 columns
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds / 3600:.0f}h"


def _decision(row: Row) -> str:
    if row.state == "event":
        return EVENT_TAGS.get(str(row.record.get("event")), "*")
    states = {"blocked": "BLOCK", "unfinished": "open", "dangling": "NOFIN"}
    return states.get(row.state, "allow")


def _exit(record: dict[str, Any]) -> str:
    if record.get("timed_out"):
        return "T/O"
    code = record.get("exit_code")
    return "-" if code is None else str(code)


def event_text(record: dict[str, Any]) -> str:
    """Describe a session event in one line."""
    event = str(record.get("event"))
    describe = _EVENT_TEXT.get(event)
    text = describe(record) if describe else event
    return one_line(text)


def _edited(record: dict[str, Any]) -> str:
    paths = record.get("paths") or ([record["path"]] if record.get("path") else [])
    tool = record.get("tool") or record.get("tool_name") or "edit"
    return f"{tool} edited {', '.join(str(p) for p in paths) or '(no path)'}"


def _job(record: dict[str, Any]) -> str:
    job = record.get("job_id") or record.get("id") or ""
    verb = "started" if record.get("event") == "job.started" else "ended"
    tail = "" if verb == "started" else f" (exit {record.get('exit_code', '-')})"
    argv = " ".join(str(word) for word in record.get("argv") or [])
    return f"job {job} {verb}: {argv}{tail}".replace("  ", " ")


def _connection(record: dict[str, Any]) -> str:
    """``CONNECT host:port allow (rule) 12 KB down 340 ms``: one proxied connection."""
    figures = record.get("connection") or {}
    argv = " ".join(str(word) for word in record.get("argv") or [])
    if figures.get("action") == "proxy":
        return f"egress proxy failed: {'; '.join(record.get('reasons') or [])}"
    rule = ", ".join(str(rule) for rule in record.get("rules") or [])
    text = f"{argv} {record.get('decision', '?')} ({rule}) {figures.get('status', '?')}"
    if record.get("decision") == "block" or figures.get("error"):
        why = figures.get("error") or "; ".join(record.get("reasons") or [])
        return f"{text}: {why}"
    return (
        f"{text}, {figures.get('bytes_up', 0)} B up, "
        f"{figures.get('bytes_down', 0)} B down, {figures.get('duration_ms', 0):.0f} ms"
    )


def _override(record: dict[str, Any]) -> str:
    items = {**(record.get("parameters") or {}), **(record.get("variables") or {})}
    named = ", ".join(f"{k}={v}" if v is not None else str(k) for k, v in items.items())
    return f"override {named or '(settings)'}"


_EVENT_TEXT: dict[str, Any] = {
    "session.started": lambda r: (
        f"session started at {r.get('level', '?')}: "
        f"task {', '.join(r.get('task_ids') or []) or '-'}, plan {r.get('plan') or '-'}"
    ),
    "session.ended": lambda r: (
        f"session ended: {r.get('status', '?')}"
        + (f"; next: {r['next_step']}" if r.get("next_step") else "")
    ),
    "session.escalated": lambda r: (
        f"escalation to {r.get('level', '?')} requested "
        f"({r.get('request_id', '?')}): {r.get('reason', '')}"
    ),
    "approval.requested": lambda r: (
        f"escalation to {r.get('level', '?')} requested "
        f"({r.get('request_id', '?')}): {r.get('reason', '')}"
    ),
    "approval.granted": lambda r: (
        f"approved {r.get('request_id', '?')} by {r.get('user', '?')}"
    ),
    "approval.denied": lambda r: (
        f"denied {r.get('request_id', '?')}: {r.get('reason', '')}"
    ),
    "approval.used": lambda r: (
        f"approval {r.get('approval_id', '?')} in force ({r.get('level', '?')})"
    ),
    "session.override": _override,
    "session.halted": lambda r: f"HALTED ({r.get('kind', '?')}): {r.get('reason', '')}",
    "session.resumed": lambda r: (
        f"resumed by {r.get('user', '?')}: {r.get('reason') or '(no reason given)'}"
    ),
    "file.edited": _edited,
    "job.started": _job,
    "job.ended": _job,
    "log.recovered": lambda _: "torn last line recovered (a writer died mid-append)",
    "network.connection": _connection,
    "network.proxy": _connection,
}


def row_fields(row: Row) -> dict[str, Any]:
    """Return a row as flat fields (the CSV columns; JSON adds the record)."""
    record = row.record
    is_command = row.is_command
    return {
        "ts": record.get("ts", record.get("Timestamp")),
        "session_id": record.get("session_id"),
        "level": record.get("level"),
        "row": row.state if is_command else "event",
        "event": record.get("event"),
        "effects": ",".join(str(e) for e in record.get("effects") or []),
        "exit_code": record.get("exit_code"),
        "duration_ms": record.get("duration_ms"),
        "command": command_text(record) if is_command else event_text(record),
        "reason": row.reason,
    }


@dataclass(frozen=True, slots=True)
class Layout:
    """The table's columns for one listing.

    Attributes:
        width: the line width, None for no limit (no terminal).
        sessions: the session ids being listed (one: no session column).
        wide: full times and session ids, nothing cut.
        mark: the cut marker (``…``, or ``~`` where the output is not UTF-8).
    """

    width: int | None
    sessions: tuple[str, ...]
    wide: bool = False
    mark: str = "…"

    @property
    def _names(self) -> dict[str, str]:
        if self.wide:
            return {session: session for session in self.sessions}
        return short_session_ids(self.sessions)

    @property
    def _session_width(self) -> int:
        if len(self.sessions) <= 1:
            return 0
        return max(len(name) for name in self._names.values())

    @property
    def _dated_ids(self) -> bool:
        return bool(self.sessions) and all(
            _PATTERN_ID.match(session) for session in self.sessions
        )

    @property
    def _time_width(self) -> int:
        if self.wide:
            return 24
        return 8 if self._dated_ids else 11

    def _time(self, record: dict[str, Any]) -> str:
        ts = str(record.get("ts", record.get("Timestamp", "")))
        if self.wide or len(ts) < 19:  # noqa: PLR2004 - RFC 3339 to the second
            return ts
        return ts[11:19] if self._dated_ids else f"{ts[5:10]} {ts[11:16]}"

    def header(self) -> str:
        """Return the header row (with the session or day, and UTC, when it fits)."""
        label = "SESSION" if self._session_width >= 7 else "SESS"  # noqa: PLR2004 - its length
        head = self._join(
            "TIME", label, "LV", "DECIDE", "EFFECTS", "EXIT", "TOOK", "COMMAND"
        )
        day = session_day(self.sessions)
        notes = [
            f"  (session {self.sessions[0]}, times UTC)"
            if len(self.sessions) == 1
            else f"  ({day}, times UTC)"
            if day
            else "  (times UTC)",
        ]
        if len(self.sessions) == 1:
            notes.append(f"  ({self.sessions[0]}, UTC)")
        for note in notes:
            if self.width is None or len(head + note) <= self.width:
                return head + note
        return head

    def _join(self, *cells: str) -> str:
        time_, session, level, decision, effects, code, took, rest = cells
        parts = [f"{time_:<{self._time_width}}"]
        if self._session_width:
            parts.append(f"{session:<{self._session_width}}")
        parts += [f"{level:<2}", f"{decision:<6}", f"{effects:<7}"]
        parts += [f"{code:>4}", f"{took:>5}", rest]
        return " ".join(parts)

    def line(self, row: Row) -> str:
        """Return one row as a line of the table (two when a reason needs room)."""
        record = row.record
        session = self._names.get(str(record.get("session_id")), "")
        effects = _effects(record) if row.is_command else ""
        if not self.wide and len(effects) > 7:  # noqa: PLR2004 - the column
            effects = effects[:6] + self.mark
        cells = (
            self._time(record),
            session,
            str(record.get("level", ""))[:2],
            _decision(row),
            effects,
            _exit(record) if row.is_command else "",
            _duration(record.get("duration_ms")) if row.is_command else "",
        )
        prefix = self._join(*cells, "")
        return prefix + self._rest(row, len(prefix))

    def _rest(self, row: Row, used: int) -> str:
        """The command (or event text) and, when blocked, the deciding reason.

        With a width, a reason that does not fit beside the command goes on a
        second line, under the command.
        """
        record = row.record
        text = command_text(record) if row.is_command else event_text(record)
        reason = deciding_text(record, "brief") if row.state == "blocked" else None
        if self.width is None or self.wide:
            return text + (f"  <- {one_line(reason)}" if reason else "")
        room = max(self.width - used, _MIN_COMMAND)
        if not reason:
            return cut(text, room, None if row.is_command else 0, self.mark)
        reason = f"  <- {one_line(reason)}"
        if len(text) + len(reason) <= room:
            return text + reason
        indent = self._time_width + 1
        below = cut(
            reason.strip(), max(self.width - indent, _MIN_COMMAND), 0, self.mark
        )
        below = "\n" + " " * indent + below
        return cut(text, room, _focus(text, record), self.mark) + below
