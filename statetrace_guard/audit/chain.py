"""Pure hash chaining: canonical JSON, record hashes, sealing, and checking.

Every log file is JSON Lines. Line 1 is a header record (``event`` is
``log.header``, ``seq`` 0, ``prev_sha256`` all zeros) naming the file's
purpose, its session or date and the guard version; every later record has
``seq`` one more than the line before and ``prev_sha256`` equal to the
``sha256`` of the line before. ``sha256`` is SHA-256 over the record's
canonical JSON (sorted keys, compact separators, UTF-8, ``ensure_ascii``
off) without its own ``sha256`` key.

Nothing here touches the file system; :mod:`statetrace_guard.audit.log`
does the locking and writing and :mod:`statetrace_guard.audit.verify`
reads files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GENESIS",
    "HEADER_EVENT",
    "RECOVERED_EVENT",
    "SCHEMA_VERSION",
    "ChainState",
    "ChainVerdict",
    "Validator",
    "canonical",
    "header_record",
    "now_ms",
    "record_hash",
    "record_time",
    "render",
    "rfc3339_ms",
    "seal",
    "verify_lines",
]

SCHEMA_VERSION = 1
GENESIS = "0" * 64
HEADER_EVENT = "log.header"
RECOVERED_EVENT = "log.recovered"

# A validator returns None when a parsed record is well formed, else what is wrong.
Validator = Callable[[Mapping[str, Any]], "str | None"]


def canonical(record: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON bytes of ``record``.

    Args:
        record: a JSON-compatible mapping.

    Returns:
        Sorted keys, compact separators, UTF-8, non-ASCII kept as is.
    """
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 of ``record`` without its own ``sha256`` key."""
    body = {key: value for key, value in record.items() if key != "sha256"}
    return hashlib.sha256(canonical(body)).hexdigest()


def seal(record: Mapping[str, Any], state: ChainState) -> dict[str, Any]:
    """Return ``record`` chained after ``state``: seq, prev_sha256 and sha256 set.

    Args:
        record: the record's content; chain keys in it are overwritten.
        state: the chain position of the line before (see ChainState.empty).

    Returns:
        A new dict ready to render.
    """
    sealed = dict(record)
    sealed["seq"] = state.seq + 1
    sealed["prev_sha256"] = state.head
    sealed.pop("sha256", None)
    sealed["sha256"] = record_hash(sealed)
    return sealed


def render(record: Mapping[str, Any]) -> bytes:
    """Return the record as one canonical JSON line ending in a newline."""
    return canonical(record) + b"\n"


def rfc3339_ms(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds (``...Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def header_record(
    purpose: str, ts: str, guard_version: str, **names: str
) -> dict[str, Any]:
    """Return the unsealed header record that opens a log file.

    Args:
        purpose: what the file holds (``session``, ``netops``, ...).
        ts: the creation time, RFC 3339.
        guard_version: the version of the guard that created the file.
        **names: what the file is about, e.g. ``session_id=...`` or ``date=...``.

    Returns:
        The header content; :func:`seal` it with ``ChainState.empty()``.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "event": HEADER_EVENT,
        "ts": ts,
        "purpose": purpose,
        "guard_version": guard_version,
        **names,
    }


def record_time(record: Mapping[str, Any]) -> str | None:
    """Return a record's timestamp (``ts``, or ``Timestamp`` in NetOps)."""
    value = record.get("ts", record.get("Timestamp"))
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a chain stands: the last line's seq, sha256 and time."""

    seq: int
    head: str
    ts: str = ""

    @classmethod
    def empty(cls) -> ChainState:
        """Return the state before a header: sealing gives seq 0 after GENESIS."""
        return cls(seq=-1, head=GENESIS)

    @classmethod
    def after(cls, record: Mapping[str, Any]) -> ChainState:
        """Return the state after a sealed record."""
        return cls(
            seq=int(record["seq"]),
            head=str(record["sha256"]),
            ts=record_time(record) or "",
        )


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The result of checking a sequence of lines.

    Attributes:
        records: how many complete, valid records were read.
        head: the sha256 of the last valid record (GENESIS when none).
        error: what is wrong at ``error_line`` (1-based), or None when intact.
        error_line: the first bad line, 0 when intact.
        torn: a trailing partial line (no newline) was found and not recovered.
        recoveries: line numbers of ``log.recovered`` records.
    """

    records: int
    head: str
    error: str | None = None
    error_line: int = 0
    torn: bool = False
    recoveries: tuple[int, ...] = field(default=())

    @property
    def intact(self) -> bool:
        """Return True when every line is valid and nothing is torn."""
        return self.error is None and not self.torn


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Parse one line into a dict, or say why it cannot be."""
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not JSON ({exc.__class__.__name__})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, None


def _check_link(
    record: Mapping[str, Any], state: ChainState, line: bytes
) -> str | None:
    """Check one parsed record against the chain state; None when it holds."""
    problem = _check_position(record, state)
    if problem is not None:
        return problem
    if record_hash(record) != record.get("sha256"):
        return "sha256 does not match the record's content"
    if render(record) != line:
        return "line is not in canonical form"
    ts = record_time(record)
    if ts is None:
        return "missing timestamp"
    if ts < state.ts:
        return f"time goes backwards ({ts} < {state.ts})"
    return None


def _check_position(record: Mapping[str, Any], state: ChainState) -> str | None:
    """Check seq, prev_sha256 and the header rule."""
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "seq missing or not an integer"
    if seq != state.seq + 1:
        return f"seq {seq} follows {state.seq} (gap, reorder or insertion)"
    if record.get("prev_sha256") != state.head:
        return "prev_sha256 does not match the previous record"
    if (seq == 0) != (record.get("event") == HEADER_EVENT):
        return "the header must be the first record and only the first"
    return None


def verify_lines(
    lines: Iterable[bytes], validate: Validator | None = None
) -> ChainVerdict:
    """Check a log file's lines: schema, chain, seq gaps and time order.

    Args:
        lines: the file's lines, each with its trailing newline (the last
            one may lack it: a torn tail).
        validate: an optional schema check run on every parsed record.

    Returns:
        The verdict; stops at the first bad line.
    """
    state = ChainState.empty()
    recoveries: list[int] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        done, kept = number - 1, tuple(recoveries)
        if not line.endswith(b"\n"):
            return ChainVerdict(
                done, state.head, None, number, torn=True, recoveries=kept
            )
        record, problem = _check_line(line, state, validate)
        if record is None:
            return ChainVerdict(done, state.head, problem, number, recoveries=kept)
        if record.get("event") == RECOVERED_EVENT:
            recoveries.append(number)
        state = ChainState.after(record)
    if number == 0:
        return ChainVerdict(0, GENESIS, "empty file (no header)", 1)
    return ChainVerdict(number, state.head, recoveries=tuple(recoveries))


def _check_line(
    line: bytes, state: ChainState, validate: Validator | None
) -> tuple[dict[str, Any] | None, str | None]:
    """Parse and check one complete line; the record is None when it is bad."""
    record, problem = _parse(line)
    if record is not None:
        problem = _check_link(record, state, line)
        if problem is None and validate is not None:
            problem = validate(record)
    return (record, None) if problem is None else (None, problem)


def now_ms() -> str:
    """Return the current time in the records' format."""
    return rfc3339_ms(datetime.now(UTC))
