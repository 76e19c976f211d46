"""A session's state, read back from its log ``<log-dir>/Sessions/<id>.jsonl``.

The log is the only truth: a session is started, halted, resumed and ended by
chained records, and its budgets are counted from the ``command.*`` records
``guard run`` writes. Reading is tolerant (a malformed line is skipped: the
chain is ``guard verify``'s business) but the records that grant something,
``session.started`` above all, are validated with pydantic: they are read
back across a trust boundary.

Budgets count from the *window*: the session's start, or the last
``session.resumed`` (the operator's resume restarts the counts).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, ValidationError

from statetrace_guard.errors import AuditError

__all__ = [
    "EVENT_APPROVAL_USED",
    "EVENT_DENIAL",
    "EVENT_ENDED",
    "EVENT_HALTED",
    "EVENT_OVERRIDE",
    "EVENT_RESUMED",
    "EVENT_STARTED",
    "CommandRun",
    "Denial",
    "EndInfo",
    "Halt",
    "SessionState",
    "StartInfo",
    "load_session",
    "parse_ts",
    "read_records",
    "session_file",
]

EVENT_STARTED = "session.started"
EVENT_ENDED = "session.ended"
EVENT_HALTED = "session.halted"
EVENT_RESUMED = "session.resumed"
EVENT_DENIAL = "session.denial"
EVENT_OVERRIDE = "session.override"
EVENT_APPROVAL_USED = "approval.used"


class StartInfo(BaseModel):
    """The ``session.started`` record's content (validated on read)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: str
    task_ids: tuple[str, ...]
    plan: str | None = None
    role: str | None = None
    level: str = "L1"
    workspace: str | None = None
    base_commit: str | None = None
    watched: dict[str, str | None] = {}
    user: str | None = None


class EndInfo(BaseModel):
    """The ``session.ended`` record's content."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: str
    status: str = "done"
    next_step: str | None = None


@dataclass(frozen=True, slots=True)
class Halt:
    """Why the session stopped admitting commands."""

    ts: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class CommandRun:
    """One finished command: what ran, which rules decided, how it ended."""

    ts: str
    argv: tuple[str, ...]
    rules: tuple[str, ...]
    exit_code: int | None
    level: str
    timed_out: bool = False
    # The record's ``test_programs`` (the test programs' own statuses, as the
    # kernel saw them), for a test command; None when not recorded.
    test_programs: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Denial:
    """One blocked intent: its normalised signature and the argv tried."""

    ts: str
    intent: tuple[str, ...]
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionState:
    """Everything the gate, ``status`` and ``end`` need about one session."""

    session_id: str
    exists: bool
    created: str | None = None
    start: StartInfo | None = None
    end: EndInfo | None = None
    halt: Halt | None = None
    window_start: str | None = None
    runs_total: int = 0
    blocked_total: int = 0
    runs_since: int = 0
    blocked_since: int = 0
    finished: tuple[CommandRun, ...] = ()
    denials_since: tuple[Denial, ...] = ()
    approval_uses: Mapping[str, int] = field(default_factory=dict)
    overrides: tuple[Mapping[str, Any], ...] = ()
    halts: tuple[Halt, ...] = ()

    @property
    def managed(self) -> bool:
        """True when the session was started with ``guard session start``."""
        return self.start is not None


def session_file(log_dir: Path, session_id: str) -> Path:
    """Return ``<log-dir>/Sessions/<session-id>.jsonl``."""
    return log_dir / "Sessions" / f"{session_id}.jsonl"


def parse_ts(text: str) -> datetime:
    """Read a record's RFC 3339 timestamp as an aware UTC datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("ts"), str):
        return record
    return None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each complete JSON object line of a log; skip anything else.

    Raises:
        AuditError: the file exists but cannot be read.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:  # line by line: a long log is never held whole
        for line in handle:
            if not line.endswith(b"\n"):
                return  # a line still being written
            record = _parse(line)
            if record is not None:
                yield record


# NOTE(sessions): records are canonical JSON, where a quote inside a string is
# always escaped, so these exact bytes can only be a record's own event key.
# ``guard run`` counts commands by them without parsing each line (the gate
# reads the log three times per command; parsing dominated its cost).
_COUNTED = {
    b'"event":"command.started"': "command.started",
    b'"event":"command.blocked"': "command.blocked",
}
_FINISHED = b'"event":"command.finished"'
_NOT_RUN = b'"not_run":true'


def load_session(
    log_dir: Path, session_id: str, *, details: bool = True
) -> SessionState:
    """Fold a session's log into its state (``exists`` False when no file).

    Args:
        log_dir: the log directory.
        session_id: the session.
        details: also collect each finished command (for reports); without
            it, command records are only counted (the run path's need).

    Raises:
        AuditError: the log exists but cannot be read.
    """
    path = session_file(log_dir, session_id)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        # A claimed id (its lock file made, see session_ids) is a session
        # whose first record is still to come.
        claimed = path.with_name(path.name + ".lock").exists()
        return SessionState(session_id=session_id, exists=claimed)
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        try:
            return _fold(handle, str(path), session_id, details)
        except OSError as exc:
            raise AuditError(f"cannot read {path}: {exc.strerror}") from exc


# NOTE(speed): ``guard run`` folds its session's log three times a command,
# and the log grows with every command: read whole, a session of a thousand
# commands cost the resident helper ~6 ms a command. The helper keeps each
# fold and reads only what was appended since. The fold is reused only while
# the file is the one folded (same inode) and still ends the folded part with
# the same line (a chained record, unique); anything else (a torn tail cut
# off, a rewrite) is folded again from the start.
# The helper folds from several threads (one per command being recorded):
# each fold is updated under its own lock, the table under another.
_NOT_RUN_EVENT = "command.finished (not run)"  # a fold-only event name
_FOLDS: dict[tuple[str, bool], _Fold] = {}
_FOLDS_LIMIT = 64
_FOLDS_LOCK = threading.Lock()
_CHUNK = 1 << 20  # folded a MiB at a time: memory stays flat for any log


@dataclass(slots=True)
class _Fold:
    inode: tuple[int, int]
    offset: int  # bytes folded: always the end of a complete line
    last_line: bytes  # the folded part's last line, newline included
    builder: _Builder
    lock: threading.Lock = field(default_factory=threading.Lock)


def _fold(handle: BinaryIO, name: str, session_id: str, details: bool) -> SessionState:
    info = os.fstat(handle.fileno())
    key = (name, details)
    inode = (info.st_dev, info.st_ino)
    with _FOLDS_LOCK:
        fold = _FOLDS.get(key)
        if fold is None:
            fold = _FOLDS[key] = _Fold(inode, 0, b"", _Builder(session_id))
            if len(_FOLDS) > _FOLDS_LIMIT:
                del _FOLDS[next(iter(_FOLDS))]
    with fold.lock:
        if not _still_folded(handle, fold, inode):
            fold.inode, fold.offset, fold.last_line = inode, 0, b""
            fold.builder = _Builder(session_id)
        _fold_new_lines(handle, fold, details=details)
        return fold.builder.freeze()


def _fold_new_lines(handle: BinaryIO, fold: _Fold, *, details: bool) -> None:
    """Fold what was appended since, a chunk at a time (never the whole file)."""
    handle.seek(fold.offset)
    carry = b""
    while chunk := handle.read(_CHUNK):
        data = carry + chunk
        complete = data.rfind(b"\n") + 1  # a line still being written waits
        carry = data[complete:]
        if not complete:
            continue
        _add_lines(fold.builder, data[:complete], details=details)
        fold.offset += complete
        fold.last_line = data[data.rfind(b"\n", 0, complete - 1) + 1 : complete]


def _still_folded(handle: BinaryIO, fold: _Fold, inode: tuple[int, int]) -> bool:
    if fold.inode != inode:
        return False
    if not fold.offset:
        return True
    handle.seek(fold.offset - len(fold.last_line))
    return handle.read(len(fold.last_line)) == fold.last_line


def _add_lines(builder: _Builder, data: bytes, *, details: bool) -> None:
    for line in data.split(b"\n")[:-1]:
        counted = next((e for key, e in _COUNTED.items() if key in line), None)
        if counted is not None:
            builder.add({"event": counted})
            continue
        if _FINISHED in line and _NOT_RUN in line:
            builder.add({"event": _NOT_RUN_EVENT})  # its start counted nothing
            continue
        if not details and _FINISHED in line:
            continue
        record = _parse(line)
        if record is not None:
            builder.add(record)


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _exit_code(record: Mapping[str, Any]) -> int | None:
    """``exit_code`` (the issue's name), else the runner's ``exit_status``."""
    found = _int_or_none(record.get("exit_code"))
    return found if found is not None else _int_or_none(record.get("exit_status"))


class _Builder:
    """Accumulates a session's records in order; ``freeze`` gives the state."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.created: str | None = None
        self.start: StartInfo | None = None
        self.end: EndInfo | None = None
        self.halt: Halt | None = None
        self.halts: list[Halt] = []
        self.window_start: str | None = None
        self.counts = {"runs": 0, "blocked": 0, "runs_since": 0, "blocked_since": 0}
        self.finished: list[CommandRun] = []
        self.denials: list[Denial] = []
        self.uses: dict[str, int] = {}
        self.overrides: list[Mapping[str, Any]] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "log.header": self._header,
            EVENT_STARTED: self._started,
            EVENT_ENDED: self._ended,
            EVENT_HALTED: self._halted,
            EVENT_RESUMED: self._resumed,
            EVENT_DENIAL: self._denial,
            EVENT_OVERRIDE: self.overrides.append,
            EVENT_APPROVAL_USED: self._used,
            "command.started": self._run,
            "command.blocked": self._blocked,
            "command.finished": self._finished,
            _NOT_RUN_EVENT: self._not_run,
        }

    def add(self, record: dict[str, Any]) -> None:
        handler = self._handlers.get(str(record.get("event")))
        if handler is not None:
            handler(record)

    def _header(self, record: dict[str, Any]) -> None:
        self.created = record["ts"]
        self.window_start = self.window_start or record["ts"]

    def _started(self, record: dict[str, Any]) -> None:
        try:
            self.start = StartInfo.model_validate(record)
        except ValidationError:
            return
        self.window_start = self.start.ts

    def _ended(self, record: dict[str, Any]) -> None:
        try:
            self.end = EndInfo.model_validate(record)
        except ValidationError:
            self.end = EndInfo(ts=record["ts"])

    def _halted(self, record: dict[str, Any]) -> None:
        self.halt = Halt(
            record["ts"], str(record.get("kind", "")), str(record.get("reason", ""))
        )
        self.halts.append(self.halt)

    def _resumed(self, record: dict[str, Any]) -> None:
        self.halt = None
        self.window_start = record["ts"]
        self.counts["runs_since"] = self.counts["blocked_since"] = 0
        self.denials.clear()

    def _denial(self, record: dict[str, Any]) -> None:
        self.denials.append(
            Denial(
                record["ts"],
                _strings(record.get("intent")),
                _strings(record.get("argv")),
            )
        )

    def _used(self, record: dict[str, Any]) -> None:
        approval = str(record.get("approval_id", ""))
        self.uses[approval] = self.uses.get(approval, 0) + 1

    def _run(self, _record: dict[str, Any]) -> None:
        self.counts["runs"] += 1
        self.counts["runs_since"] += 1

    def _not_run(self, _record: dict[str, Any]) -> None:
        """A start finished as never run: it used none of the budget."""
        self.counts["runs"] -= 1
        self.counts["runs_since"] = max(self.counts["runs_since"] - 1, 0)

    def _blocked(self, _record: dict[str, Any]) -> None:
        self.counts["blocked"] += 1
        self.counts["blocked_since"] += 1

    def _finished(self, record: dict[str, Any]) -> None:
        self.finished.append(
            CommandRun(
                ts=record["ts"],
                argv=_strings(record.get("argv")),
                rules=_strings(record.get("rules")),
                exit_code=_exit_code(record),
                level=str(record.get("level", "")),
                timed_out=record.get("timed_out") is True,
                test_programs=_mapping(record.get("test_programs")),
            )
        )

    def freeze(self) -> SessionState:
        return SessionState(
            session_id=self.session_id,
            exists=True,
            created=self.created,
            start=self.start,
            end=self.end,
            halt=self.halt,
            window_start=self.window_start,
            runs_total=self.counts["runs"],
            blocked_total=self.counts["blocked"],
            runs_since=self.counts["runs_since"],
            blocked_since=self.counts["blocked_since"],
            finished=tuple(self.finished),
            denials_since=tuple(self.denials),
            approval_uses=dict(self.uses),
            overrides=tuple(self.overrides),
            halts=tuple(self.halts),
        )
