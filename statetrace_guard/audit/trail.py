"""The audit trail facade ``guard run`` calls, and the record pipeline.

The pipeline is a chain of pure steps: build the record from the command's
facts, make it JSON-safe, add ``schema_version`` and ``guard_version``,
redact; then, under the file's lock, add ``ts`` (RFC 3339 UTC, milliseconds),
seal the chain and render the line (:class:`ChainWriter`). Records are
produced with structlog: :class:`StructlogFront` runs the same steps as
structlog processors (``structlog.wrap_logger`` with explicit processors,
never ``structlog.configure``) into the locked writer. :class:`DirectFront`
calls the steps without structlog, for a hot path that cannot pay its import;
both write identical records.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from statetrace_guard._version import __version__
from statetrace_guard.audit.chain import SCHEMA_VERSION, header_record, now_ms
from statetrace_guard.audit.log import ChainWriter
from statetrace_guard.audit.netops import (
    connection_netops,
    netops_path,
    netops_record,
)
from statetrace_guard.audit.pending import parked_folder
from statetrace_guard.audit.redact import Redactor, key_file, load_key
from statetrace_guard.errors import AuditError

__all__ = [
    "FINISH_RESERVE",
    "CommandFacts",
    "DirectFront",
    "FinishResult",
    "Front",
    "Pipeline",
    "StartMark",
    "StructlogFront",
    "Trail",
    "jsonable",
    "session_path",
]

# Disk held for a command's finish (and the session events after it) when
# its start is written: a finish is a few KiB; several commands of one
# session may be in flight, and each reserves from the same end of file.
FINISH_RESERVE = 64 * 1024
FinishResult = Literal["written", "present", "parked"]
_LINE_ALLOWANCE = 16 * 1024  # the reserving record's own line, within the hold
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RESERVED = frozenset(
    {"schema_version", "event", "ts", "seq", "prev_sha256", "sha256", "guard_version"}
)


@dataclass(frozen=True)
class CommandFacts:
    """Everything known about a command before it runs (raw, not yet redacted).

    ``env`` holds the two opt-in variables as seen (None when unset) and any
    ``STATETRACE_*`` overrides; ``extra`` is recorded under ``extra``.
    """

    session_id: str
    task_id: str | None
    level: str
    argv: tuple[str, ...]
    cwd: str
    pid: int
    effects: tuple[str, ...]
    decision: Literal["allow", "block"]
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    policy_sha256: str
    network: bool
    urls: tuple[str, ...]
    env: Mapping[str, str | None]
    required_level: str | None = None
    task_ids: tuple[str, ...] = ()
    plan_refs: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Allowed only because the kernel envelope contains it (see decision.py).
    contained: bool = False

    def fields(self) -> dict[str, Any]:
        """Return the record fields every ``command.*`` record carries."""
        return {
            "session_id": self.session_id,
            "task_id": self.task_id,
            "level": self.level,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "pid": self.pid,
            "effects": list(self.effects),
            "decision": self.decision,
            "reasons": list(self.reasons),
            "rules": list(self.rules),
            "policy_sha256": self.policy_sha256,
            "required_level": self.required_level,
            "network": self.network,
            "urls": list(self.urls),
            "env": dict(self.env),
            "task_ids": list(self.task_ids),
            "plan_refs": list(self.plan_refs),
            "extra": dict(self.extra),
            "contained": self.contained,
        }


_SCALARS = frozenset({str, int, float, bool, type(None)})

# One redactor per key file for the process: the key never changes once
# created (it is linked into place whole, as the chain key's module says),
# and the redactor's cache of redacted strings then serves every command
# the resident helper records (the workspace, the rules, the messages
# repeat), not only the records of one command.
_REDACTORS: dict[Path, Redactor] = {}


def _redactor(key_path: Path | None) -> Redactor:
    where = key_file(key_path)
    found = _REDACTORS.get(where)
    if found is None:
        found = _REDACTORS[where] = Redactor(load_key(where))
    return found


def jsonable(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """Return ``value`` with tuples, sets and paths turned into JSON types."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, dict | Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, str | int | float | bool):  # subclasses (enums)
        return value
    return str(value)


@dataclass(frozen=True)
class Pipeline:
    """The pure steps before the lock: JSON-safe, metadata, redaction."""

    redactor: Redactor
    guard_version: str = __version__

    def prepare(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return the record ready for sealing (``ts`` and chain come later)."""
        out = jsonable(record)
        out["schema_version"] = SCHEMA_VERSION
        out["guard_version"] = self.guard_version
        raw = _raw_words(out.get("argv"))
        redacted = self.redactor.record(out)
        if raw:
            kept = _unredacted(raw, redacted.get("argv"))
            if kept:
                redacted["argv_raw"] = kept
        return redacted


def _raw_words(argv: object) -> dict[int, tuple[str, str]]:
    r"""Arguments that are not valid UTF-8: index -> (as text, base64 of the bytes).

    NOTE(audit): the operating system passes bytes; Python holds an argument
    that is not valid UTF-8 with lone surrogates, which JSON cannot carry.
    ``argv`` shows such a word readably (each undecodable byte as ``\xNN``),
    which a word holding those four characters would also give; so the
    exact bytes go beside it, in ``argv_raw`` (base64 by index), and a word
    without an ``argv_raw`` entry is exactly its text.
    """
    if not isinstance(argv, list):
        return {}
    raw: dict[int, tuple[str, str]] = {}
    for index, word in enumerate(argv):
        if isinstance(word, str) and not word.isascii() and _has_surrogates(word):
            exact = word.encode("utf-8", "surrogateescape")
            readable = exact.decode("utf-8", "backslashreplace")
            raw[index] = (readable, base64.b64encode(exact).decode("ascii"))
    return raw


def _has_surrogates(word: str) -> bool:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unredacted(raw: Mapping[int, tuple[str, str]], argv: object) -> dict[str, str]:
    """The exact bytes of the words redaction left alone (never a secret)."""
    if not isinstance(argv, list):
        return {}
    return {
        str(index): encoded
        for index, (readable, encoded) in raw.items()
        if index < len(argv) and argv[index] == readable
    }


class Front(Protocol):
    """Runs the pipeline into a writer; returns the record as written."""

    def emit(self, writer: ChainWriter, record: Mapping[str, Any]) -> dict[str, Any]:
        """Prepare ``record`` and append it with ``writer``."""
        ...


@dataclass(frozen=True)
class DirectFront:
    """Calls the pipeline directly (no structlog import)."""

    pipeline: Pipeline

    def emit(self, writer: ChainWriter, record: Mapping[str, Any]) -> dict[str, Any]:
        """Prepare and append."""
        return writer.append(self.pipeline.prepare(record))


class _WriterSink:
    """The wrapped logger structlog hands the final event dict to."""

    def __init__(self, writer: ChainWriter) -> None:
        """Keep the locked writer."""
        self._writer = writer

    def msg(self, **record: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON values
        """Append the processed record; return it as written."""
        return self._writer.append(record)


class StructlogFront:
    """Produces records with structlog, running the pipeline as processors."""

    def __init__(self, pipeline: Pipeline) -> None:
        """Import structlog (only now: it costs tens of milliseconds)."""
        import structlog  # noqa: PLC0415 - lazy: see the module docstring

        self._structlog = structlog
        self._pipeline = pipeline
        self._loggers: dict[Path, Any] = {}

    def _prepare(self, _logger: object, _name: str, event: Any) -> Any:  # noqa: ANN401 - structlog's EventDict
        """The processor: run the pure pipeline on structlog's event dict."""
        return self._pipeline.prepare(event)

    def emit(self, writer: ChainWriter, record: Mapping[str, Any]) -> dict[str, Any]:
        """Log ``record`` through a structlog logger bound to ``writer``."""
        logger = self._loggers.get(writer.path)
        if logger is None:
            logger = self._structlog.wrap_logger(
                _WriterSink(writer),
                processors=[self._prepare],
                wrapper_class=self._structlog.BoundLogger,
                context_class=dict,
            )
            self._loggers[writer.path] = logger
        fields = dict(record)
        event = fields.pop("event")
        written: dict[str, Any] = logger.msg(event, **fields)
        return written


@dataclass(frozen=True, slots=True)
class StartMark:
    """Where a ``command.started`` landed: its seq and its line's byte offset."""

    seq: int
    offset: int


# The command fields a start and its finish share (CommandFacts.fields()).
_COMMAND_KEYS = (
    "session_id",
    "task_id",
    "level",
    "argv",
    "argv_raw",
    "cwd",
    "pid",
    "effects",
    "decision",
    "reasons",
    "rules",
    "policy_sha256",
    "required_level",
    "network",
    "urls",
    "env",
    "task_ids",
    "plan_refs",
    "extra",
)


def _note_open(line: bytes, needle: bytes, starts: dict[int, dict[str, Any]]) -> None:
    """Track the helper-written starts of one pid that have no finish yet."""
    if b'"command.finished"' in line:
        if b'"started_seq":' in line:
            with contextlib.suppress(ValueError):
                starts.pop(json.loads(line).get("started_seq"), None)
        return
    if needle not in line or b'"command.started"' not in line:
        return
    try:
        record = json.loads(line)
    except ValueError:
        return
    extra = record.get("extra")
    if isinstance(extra, dict) and extra.get("via") == "daemon":
        starts[int(record["seq"])] = record


def session_path(log_dir: Path, session_id: str) -> Path:
    """Return ``<log-dir>/Sessions/<session-id>.jsonl``."""
    return log_dir / "Sessions" / f"{session_id}.jsonl"


class Trail:
    """Writes a session's records (and NetOps lines) to the audit trail."""

    def __init__(
        self,
        log_dir: Path,
        session_id: str,
        *,
        durable: bool = False,
        lock_timeout: float = 10.0,
        key_path: Path | None = None,
        front: Literal["structlog", "direct"] = "structlog",
        clock: Callable[[], str] = now_ms,
    ) -> None:
        """Prepare the trail; files, key and structlog load on first use.

        Args:
            log_dir: the log directory (``Sessions/`` and ``NetOps/`` below it).
            session_id: names the session file; letters, digits, ``._-``.
            durable: fsync every record before returning.
            lock_timeout: seconds to wait for a file's lock.
            key_path: the redaction key (default ``guard_home()/redact.key``).
            front: ``structlog`` (records produced with structlog) or
                ``direct`` (same pipeline, no structlog import).
            clock: the time source, RFC 3339 UTC with milliseconds.

        Raises:
            AuditError: the session id cannot name a file.
        """
        if not _SESSION_ID.fullmatch(session_id):
            raise AuditError(
                f"invalid session id {session_id!r}",
                hint="use letters, digits, '.', '_' and '-'",
            )
        self.log_dir = log_dir
        self.session_id = session_id
        self._durable = durable
        self._lock_timeout = lock_timeout
        self._key_path = key_path
        self._front_name = front
        self._front: Front | None = None
        self._clock = clock
        self._writers: dict[Path, ChainWriter] = {}
        self._session_path = session_path(log_dir, session_id)
        self._pipeline: Pipeline | None = None
        self._flushing = False
        self._parked_folder: Path | None = None

    def blocked(self, facts: CommandFacts) -> None:
        """Record a blocked command (and its NetOps line when it uses the network).

        Raises:
            AuditError: the record cannot be written.
        """
        written = self._session({**facts.fields(), "event": "command.blocked"})
        if facts.network:
            self._netops(netops_record(written, None))

    def started(
        self,
        facts: CommandFacts,
        enforcement: Mapping[str, str],
        envelope: Mapping[str, Any] | None = None,
        *,
        reserve: int = FINISH_RESERVE,
    ) -> StartMark:
        """Record that the command is about to start; call before starting it.

        ``reserve`` bytes of disk are held for its finish first (see
        :class:`~statetrace_guard.audit.log.ChainWriter`). ``envelope``
        (writable and read-only paths, network) is recorded for a contained
        command: what confined the code nobody could classify.

        Returns:
            Where the start landed, for :meth:`finished`.

        Raises:
            AuditError: the record cannot be written (or there is no room for
                its finish); the command must not run.
        """
        record: dict[str, Any] = {
            **facts.fields(),
            "event": "command.started",
            "enforcement": dict(enforcement),
        }
        if envelope is not None:
            record["envelope"] = dict(envelope)
        written = self._session(record, reserve=reserve)
        return StartMark(int(written["seq"]), self._session_writer().last_offset)

    @contextlib.contextmanager
    def session_locked(self) -> Iterator[None]:
        """Hold the session file's lock: what is read inside stays true.

        Raises:
            AuditError: the lock was not obtained in time.
        """
        with self._session_writer().exclusive():
            yield

    def finished(
        self,
        facts: CommandFacts,
        outcome: Mapping[str, Any],
        start: StartMark | None = None,
        events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> FinishResult:
        """Record how the command ended (once), and the session events after it.

        Args:
            facts: the facts given to :meth:`started`.
            outcome: ``exit_code``, ``signal``, ``duration_ms``, ``timed_out``
                and any resource figures, recorded as top-level fields.
            start: what :meth:`started` returned. With it the finish names its
                start (``started_seq``) and is written only if no finish for
                that start is in the log yet; one that cannot be written now
                is kept in guard's home and written later.
            events: ``(event, fields)`` written right after the finish, under
                the same lock (and only with it).

        Returns:
            ``written``; ``present`` (another guard process wrote it first);
            ``parked`` (kept in guard's home: the log cannot take it now).

        Raises:
            AuditError: the record can be written neither to the log nor to
                guard's home.
            ValueError: ``outcome`` tries to set a command or chain field.
        """
        base = facts.fields()
        clash = (set(outcome) & set(base)) | (set(outcome) & _RESERVED)
        if clash:
            raise ValueError(f"outcome cannot set {sorted(clash)}")
        record = {**base, **outcome, "event": "command.finished"}
        if start is not None:
            record["started_seq"] = start.seq
        try:
            written = self._finish_once(record, start, events)
        except AuditError:
            if start is None:
                raise
            self._park(record, start)
            return "parked"
        if written is None:
            return "present"
        if facts.network:
            self._netops(netops_record(written, outcome))
        return "written"

    def _finish_once(
        self,
        record: Mapping[str, Any],
        start: StartMark | None,
        events: Sequence[tuple[str, Mapping[str, Any]]],
    ) -> dict[str, Any] | None:
        writer = self._session_writer()
        with writer.exclusive():
            # NOTE(exactly-once): a finish kept in guard's home may end this
            # very start (its other writer, the client or the helper, could
            # not get the lock). It goes in before the check, and nothing is
            # written out between the check and our append.
            self._flush_parked_first()
            if start is not None and writer.holds(start.seq, start.offset):
                return None
            written = self._session(record, flush=False)
            for event, fields in events:
                self.event(event, fields)
        return written

    def _park(self, record: Mapping[str, Any], start: StartMark) -> None:
        """Keep a finish the log cannot take in guard's home."""
        from statetrace_guard.audit.pending import park  # noqa: PLC0415 - rare path

        prepared = self._get_front_pipeline().prepare(record)
        try:
            park(self._session_path, prepared, start.seq, start.offset)
        except OSError as exc:
            raise AuditError(
                f"cannot write command.finished to {self._session_path} nor keep "
                f"it in guard's home: {exc.strerror or exc}",
                hint="check that the log directory and guard's home are writable",
            ) from exc

    def finish_abandoned(self, pid: int, reason: str) -> int:
        """Finish as not run the starts the helper wrote for guard process ``pid``.

        A helper that dies between writing a command's start and telling its
        client leaves that start open; the client (same pid) then runs the
        command in-process. Called by that client under the session's lock,
        before its own start: the start it never heard of ends here (never
        run). Returns how many.
        """
        needle = f'"pid":{pid},'.encode()
        open_starts: dict[int, dict[str, Any]] = {}
        with self.session_locked():
            # Kept finishes first: one of them may end a start found open here.
            self._flush_parked_first()
            try:
                with self._session_path.open("rb") as stream:
                    for line in stream:
                        _note_open(line, needle, open_starts)
            except FileNotFoundError:
                return 0
            for seq, start in sorted(open_starts.items()):
                content = {key: start[key] for key in _COMMAND_KEYS if key in start}
                self._session(
                    content
                    | {
                        "event": "command.finished",
                        "exit_code": None,
                        "exit_status": None,
                        "not_run": True,
                        "error": f"nothing ran: {reason}",
                        "duration_ms": 0.0,
                        "started_seq": seq,
                        "recorded_by": "client",
                    },
                    flush=False,
                )
        return len(open_starts)

    def flush_parked(self) -> int:
        """Write the finishes kept in guard's home for this session; return how many.

        Each is written only if its start has no finish yet; it stays kept
        when the log still cannot take it.
        """
        from statetrace_guard.audit.pending import parked  # noqa: PLC0415 - rare path

        writer = self._session_writer()
        done = 0
        for item in parked(self._session_path):
            try:
                writer.append_once(item.record, item.started_seq, item.since)
            except AuditError:
                break
            item.discard()
            done += 1
        return done

    def connection(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write a proxied connection's session record and its NetOps line.

        ``record`` comes from ``connection_record`` or ``proxy_record``.

        Raises:
            AuditError: a record cannot be written.
        """
        written = self._session(record)
        self._netops(connection_netops(written))
        return written

    def event(self, event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Write any other chained record to the session file; return it.

        ``session_id`` and ``pid`` are filled in unless ``fields`` sets them.

        Raises:
            AuditError: the record cannot be written.
            ValueError: ``fields`` tries to set a chain field.
        """
        clash = set(fields) & _RESERVED
        if clash:
            raise ValueError(f"fields cannot set {sorted(clash)}")
        base = {"session_id": self.session_id, "pid": os.getpid()}
        return self._session({**base, **fields, "event": event})

    def close(self) -> None:
        """Close the files this trail keeps open (also done when it is collected)."""
        for writer in self._writers.values():
            writer.close()

    def _session(
        self, record: Mapping[str, Any], *, reserve: int = 0, flush: bool = True
    ) -> dict[str, Any]:
        """Append one record to this session's file.

        Finishes kept in guard's home for this file go in first, unless
        ``flush`` is False: a finish checked for under the lock just now
        (the check must still hold when it is appended).
        """
        writer = self._session_writer()
        if flush:
            self._flush_parked_first()
        front = self._get_front()
        if not reserve:
            return front.emit(writer, record)
        with writer.exclusive():
            writer.hold_next(reserve + _LINE_ALLOWANCE)
            return front.emit(writer, record)

    def _flush_parked_first(self) -> None:
        """Write the finishes kept in guard's home for this file (when any)."""
        if self._flushing or not self._parked_here():
            return
        self._flushing = True
        try:
            self.flush_parked()
        finally:
            self._flushing = False

    def _parked_here(self) -> bool:
        """True when finishes for this session wait in guard's home (one stat)."""
        if self._parked_folder is None:
            self._parked_folder = parked_folder(self._session_path)
        return self._parked_folder.is_dir()

    def _session_writer(self) -> ChainWriter:
        return self._writers.get(self._session_path) or self._writer(
            self._session_path,
            lambda ts: header_record(
                "session", ts, __version__, session_id=self.session_id
            ),
            {"session_id": self.session_id},
            "ts",
        )

    def _netops(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one NetOps line to today's NetOps file."""
        date = self._clock()[:10]
        writer = self._writer(
            netops_path(self.log_dir, date),
            lambda ts: header_record("netops", ts, __version__, date=date),
            {"date": date},
            "Timestamp",
        )
        return self._get_front().emit(writer, record)

    def _writer(
        self,
        path: Path,
        header: Callable[[str], Mapping[str, Any]],
        identity: Mapping[str, Any],
        time_key: str,
    ) -> ChainWriter:
        """Return the cached writer for ``path``, creating it on first use."""
        writer = self._writers.get(path)
        if writer is None:
            writer = ChainWriter(
                path,
                header,
                durable=self._durable,
                lock_timeout=self._lock_timeout,
                clock=self._clock,
                identity=identity,
                time_key=time_key,
            )
            self._writers[path] = writer
        return writer

    def _get_front(self) -> Front:
        """Load the key and build the front end on first use."""
        if self._front is None:
            pipeline = self._get_front_pipeline()
            self._front = (
                StructlogFront(pipeline)
                if self._front_name == "structlog"
                else DirectFront(pipeline)
            )
        return self._front

    def _get_front_pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(_redactor(self._key_path))
        return self._pipeline
