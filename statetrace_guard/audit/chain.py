"""Pure hash chaining: canonical JSON, record hashes, sealing, and checking.

Every log file is JSON Lines. Line 1 is a header record (``event`` is
``log.header``, ``seq`` 0, ``prev_sha256`` all zeros) naming the file's
purpose, its session or date and the guard version; every later record has
``seq`` one more than the line before and ``prev_sha256`` equal to the
``sha256`` of the line before. ``sha256`` is SHA-256 over the record's
canonical JSON (sorted keys, compact separators, UTF-8, ``ensure_ascii``
off) without its own ``sha256`` and ``mac`` keys.

A chain anyone can recompute proves nothing against a writer who rewrites
the file and re-seals it (issue 12, K4). So a keyed log's header names a
``key_id`` and every record carries ``mac``: HMAC-SHA256 of its ``sha256``
under a :class:`ChainKey` derived from the key in guard's home, which no
guarded program can read. Without that key a rewrite cannot be re-sealed;
with it, :class:`ChainCheck` checks every ``mac``.

:class:`ChainCheck` is the one chain verifier: ``guard verify``, ``guard
replay`` and every other reader of a log go through it, line by line (a file
is never read whole). Nothing here touches the file system;
:mod:`statetrace_guard.audit.log` does the locking and writing and
:mod:`statetrace_guard.audit.verify` reads files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GENESIS",
    "HEADER_EVENT",
    "RECOVERED_EVENT",
    "SCHEMA_VERSION",
    "UNHASHED",
    "ChainCheck",
    "ChainKey",
    "ChainState",
    "ChainVerdict",
    "Validator",
    "body_bytes",
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
# The keys a record's hash leaves out: the hash itself and the mac over it.
UNHASHED = ("sha256", "mac")
_MAC_LABEL = b"statetrace-guard chain mac v1"
# NOTE(speed): a decoder made once skips json.loads' per-call set-up (and
# the encoding sniffing of bytes): it counts at a million lines.
_decode = json.JSONDecoder().decode

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
    """Return the hex SHA-256 of ``record`` without its ``sha256`` and ``mac``."""
    body = {key: value for key, value in record.items() if key not in UNHASHED}
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainKey:
    """The secret that makes a chain impossible to re-seal without guard's home.

    Attributes:
        secret: the MAC key, derived from guard's home key (never the key
            itself, which also keys redaction).
        key_id: a short public name of the key, written in each keyed log's
            header, so a reader knows whether it holds the key.
    """

    secret: bytes = field(repr=False)
    key_id: str

    @classmethod
    def derive(cls, root: bytes) -> ChainKey:
        """The chain key of an installation, from the key in guard's home."""
        secret = hmac.digest(root, _MAC_LABEL, "sha256")
        return cls(secret, hmac.digest(secret, b"key id", "sha256")[:8].hex())

    def mac(self, digest: str) -> str:
        """HMAC-SHA256 of a record's hex ``sha256``."""
        return hmac.digest(self.secret, digest.encode("ascii"), "sha256").hex()


def seal(
    record: Mapping[str, Any], state: ChainState, key: ChainKey | None = None
) -> dict[str, Any]:
    """Return ``record`` chained after ``state``: seq, prev_sha256, sha256 (, mac).

    Args:
        record: the record's content; chain keys in it are overwritten.
        state: the chain position of the line before (see ChainState.empty).
        key: when given, ``mac`` is set (a keyed log's records all have one).

    Returns:
        A new dict ready to render.
    """
    sealed = dict(record)
    sealed["seq"] = state.seq + 1
    sealed["prev_sha256"] = state.head
    sealed.pop("sha256", None)
    sealed.pop("mac", None)
    digest = record_hash(sealed)
    if key is not None:
        sealed["mac"] = key.mac(digest)
    sealed["sha256"] = digest
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
        key_id: the key the header names; None for a log written without one.
        authenticated: every record's ``mac`` was checked with that key (the
            reader holds it). False means nobody here can tell whether the
            file was rewritten and re-sealed.
    """

    records: int
    head: str
    error: str | None = None
    error_line: int = 0
    torn: bool = False
    recoveries: tuple[int, ...] = field(default=())
    key_id: str | None = None
    authenticated: bool = False

    @property
    def intact(self) -> bool:
        """Return True when every line is valid and nothing is torn."""
        return self.error is None and not self.torn


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


def _member(name: str, value: str) -> bytes | None:
    """The canonical bytes of a ``"name":"value"`` member (None: not hex)."""
    if not value.isascii():
        return None
    return b'"' + name.encode() + b'":"' + value.encode("ascii") + b'"'


def _without(line: bytes, member: bytes) -> bytes | None:
    """``line`` (a JSON object) without one top-level member, or None."""
    if line.count(member) != 1:
        return None
    if (cut := line.find(b"," + member)) != -1:
        return line[:cut] + line[cut + len(member) + 1 :]
    if line.startswith(b"{" + member + b","):
        return b"{" + line[len(member) + 2 :]
    return None


def body_bytes(line: bytes, record: Mapping[str, Any]) -> bytes | None:
    """The bytes a canonical line's ``sha256`` was computed over, or None.

    NOTE(audit): the line without its ``sha256`` (and ``mac``) member. Hashing
    these bytes directly replaces a second JSON rendering per record: when
    they hash to the recorded ``sha256``, they are exactly what the writer
    hashed. (A JSON string cannot hold an unescaped quote, so the member's
    bytes can only be the record's own member.)
    """
    body: bytes | None = line[:-1] if line.endswith(b"\n") else line
    for name in UNHASHED:
        value = record.get(name)
        if value is None and name == "mac":
            continue
        member = _member(name, value) if isinstance(value, str) else None
        if member is None or body is None:
            return None
        body = _without(body, member)
    return body


class ChainCheck:
    """The one chain verifier: schema, chain, sequence, time order and macs.

    ``records`` yields each valid record as it is read (one line in memory
    at a time); once it is exhausted, ``verdict`` says how the file ended.
    It stops at the first bad line.

    Args:
        key: this guard's chain key. A log whose header names this key has
            every ``mac`` checked; a missing or wrong one is an error. Any
            other log is checked without (``authenticated`` False).
        validate: a schema check run on every parsed record.
        layout: also require each line to be the canonical rendering of its
            record (``guard verify``; the hash already binds the bytes).
    """

    def __init__(
        self,
        *,
        key: ChainKey | None = None,
        validate: Validator | None = None,
        layout: bool = False,
    ) -> None:
        """Start before line 1."""
        self._key = key
        self._validate = validate
        self._layout = layout
        self._state = ChainState.empty()
        self._recoveries: list[int] = []
        self._key_id: str | None = None
        self._macs = False
        self._verdict: ChainVerdict | None = None

    @property
    def verdict(self) -> ChainVerdict:
        """The result; only once :meth:`records` has been read to its end."""
        if self._verdict is None:
            raise RuntimeError("the lines have not all been checked yet")
        return self._verdict

    def records(self, lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(line number, record)`` for each valid line, in order."""
        number = 0
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                self._stop(number, None, torn=True)
                return
            record, problem = self._check(line)
            if record is None:
                self._stop(number, problem)
                return
            if record.get("event") == RECOVERED_EVENT:
                self._recoveries.append(number)
            self._state = ChainState.after(record)
            yield number, record
        if number == 0:
            self._stop(1, "empty file (no header)")
            return
        self._stop(0, None)

    def _stop(self, line: int, error: str | None, *, torn: bool = False) -> None:
        state = self._state
        self._verdict = ChainVerdict(
            records=state.seq + 1,
            head=state.head,
            error=error,
            error_line=line,
            torn=torn,
            recoveries=tuple(self._recoveries),
            key_id=self._key_id,
            authenticated=self._macs and error is None and not torn,
        )

    def _check(self, line: bytes) -> tuple[dict[str, Any] | None, str | None]:
        """Parse and check one complete line; the record is None when it is bad."""
        try:
            record = _decode(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return None, f"not JSON ({exc.__class__.__name__})"
        if not isinstance(record, dict):
            return None, "not a JSON object"
        problem = (
            _check_position(record, self._state)
            or self._check_hash(record, line)
            or self._check_time(record)
            or self._check_mac(record)
        )
        if problem is None and self._validate is not None:
            problem = self._validate(record)
        return (record, None) if problem is None else (None, problem)

    def _check_hash(self, record: Mapping[str, Any], line: bytes) -> str | None:
        digest = record.get("sha256")
        body = body_bytes(line, record)
        if body is not None and hashlib.sha256(body).hexdigest() == digest:
            if self._layout and render(record) != line:
                return "line is not in canonical form"
            return None
        if render(record) != line:
            return "line is not in canonical form"
        return "sha256 does not match the record's content"

    def _check_time(self, record: Mapping[str, Any]) -> str | None:
        ts = record_time(record)
        if ts is None:
            return "missing timestamp"
        if ts < self._state.ts:
            return f"time goes backwards ({ts} < {self._state.ts})"
        return None

    def _check_mac(self, record: Mapping[str, Any]) -> str | None:
        if record.get("seq") == 0:
            key_id = record.get("key_id")
            self._key_id = key_id if isinstance(key_id, str) else None
            self._macs = self._key is not None and self._key.key_id == self._key_id
        if not self._macs or self._key is None:
            return None
        mac = record.get("mac")
        if not isinstance(mac, str):
            return "no mac: not written with guard's key (rewritten?)"
        if not hmac.compare_digest(mac, self._key.mac(str(record["sha256"]))):
            return "mac does not match: rewritten without guard's key"
        return None


def verify_lines(
    lines: Iterable[bytes],
    validate: Validator | None = None,
    key: ChainKey | None = None,
) -> ChainVerdict:
    """Check a log file's lines: schema, chain, seq gaps, time order, macs.

    Args:
        lines: the file's lines, each with its trailing newline (the last
            one may lack it: a torn tail).
        validate: an optional schema check run on every parsed record.
        key: this guard's chain key (see :class:`ChainCheck`).

    Returns:
        The verdict; stops at the first bad line.
    """
    check = ChainCheck(key=key, validate=validate, layout=True)
    for _ in check.records(lines):
        pass
    return check.verdict


def now_ms() -> str:
    """Return the current time in the records' format."""
    return rfc3339_ms(datetime.now(UTC))
