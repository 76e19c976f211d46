"""``guard verify``: check log files' schema, chain, sequence, time order and keys.

A file is intact when every line is a valid record of its event's schema,
chains to the line before, has the next ``seq`` and no earlier time, and the
last line is complete. A recovered torn tail (a ``log.recovered`` record) is
reported, not failed. An anchor is a file's head hash stored elsewhere; with
one, a file is intact only if a record with that hash is still in it, so
truncating the tail (which the chain alone cannot show) is detected.

Keys (issue 12, K4): a log keyed with this guard's key has every record's
``mac`` checked, so a rewrite re-sealed without guard's home fails. Where
this guard has a key, a log it cannot authenticate (not keyed, or keyed by
another installation) fails too, unless ``foreign`` says the logs come from
elsewhere; where it has none (a log verified on another machine), only the
chain is checked and the report says so.

Heads: every append also anchors the log's head in guard's home (see
:mod:`statetrace_guard.audit.heads`); here a log cut below that head, or an
anchored log that is gone from a verified log directory, fails.

Completeness (issue 14): a ``command.started`` without a
``command.finished`` is reported: *running* while the guard process that
wrote it lives, else *dangling* (the guard or the machine stopped while the
command ran), with *pending* when its finish waits in guard's home. A file
with dangling starts is intact but not complete (exit 5).

Files are read line by line: memory stays bounded whatever their size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from statetrace_guard.audit.chain import GENESIS, ChainCheck, ChainKey, ChainVerdict
from statetrace_guard.audit.completeness import OpenStart, StartTracker, still_running
from statetrace_guard.audit.heads import Head, anchored_heads, read_head
from statetrace_guard.errors import AuditError

if TYPE_CHECKING:
    from statetrace_guard.audit.record import SchemaRegistry

__all__ = [
    "LOG_PATTERNS",
    "FileReport",
    "discover",
    "format_anchor",
    "parse_anchors",
    "split_lines",
    "verify_file",
    "verify_paths",
]

# (subdirectory, glob) of every chained log the guard writes.
LOG_PATTERNS = (("Sessions", "*.jsonl"), ("NetOps", "*.json"), ("Approvals", "*.jsonl"))
_HOME = "home"  # verify with the key in guard's home (the default)


@dataclass(frozen=True, slots=True)
class FileReport:
    """What verify found in one file.

    Attributes:
        path: the file.
        verdict: the chain check's result.
        expected_head: the anchor checked, if any.
        anchor_line: the line holding the anchor (0 when not found or none).
        notes: warnings that do not fail the file (a torn side file missing).
        local_key_id: this guard's key id; None when it has no key.
        foreign: logs from elsewhere: a log this guard cannot authenticate
            is checked as a chain only, not failed.
        dangling: starts without a finish whose guard is gone.
        running: starts without a finish whose guard still runs.
        pending: starts whose finish waits in guard's home.
        cut: why the file falls short of the head guard's home anchored
            for it (records cut from its end), or None.
    """

    path: Path
    verdict: ChainVerdict
    expected_head: str | None = None
    anchor_line: int = 0
    notes: tuple[str, ...] = ()
    local_key_id: str | None = None
    foreign: bool = False
    dangling: tuple[OpenStart, ...] = ()
    running: tuple[OpenStart, ...] = ()
    pending: frozenset[int] = field(default_factory=frozenset)
    cut: str | None = None

    @property
    def ok(self) -> bool:
        """True when intact, holding its anchors, and authenticated where it must be."""
        anchored = self.expected_head is None or self.anchor_line > 0
        whole = self.cut is None
        return self.verdict.intact and anchored and whole and self._authentic_enough

    @property
    def complete(self) -> bool:
        """True when every command that started has a finish (or still runs)."""
        return not self.dangling

    @property
    def _authentic_enough(self) -> bool:
        return self.verdict.authenticated or self.local_key_id is None or self.foreign

    @property
    def head(self) -> str:
        """Return the sha256 of the last valid record."""
        return self.verdict.head

    def describe(self) -> str:
        """Return the one-line summary verify prints for this file."""
        verdict = self.verdict
        if verdict.error is not None:
            return f"{self.path}:{verdict.error_line}: {verdict.error}"
        if verdict.torn:
            return (
                f"{self.path}:{verdict.error_line}: torn last line (a writer "
                "died mid-append; the next append recovers it)"
            )
        if self.expected_head is not None and not self.anchor_line:
            return (
                f"{self.path}: anchor {self.expected_head[:12]}... not found "
                "(tail truncated or file rewritten)"
            )
        if self.cut is not None:
            return f"{self.path}: {self.cut}"
        if not self._authentic_enough:
            return (
                f"{self.path}: cannot authenticate: {self._key_words()}: written "
                "elsewhere, or rewritten without guard's key (--foreign checks "
                "a log from another machine as a chain only)"
            )
        notes = [f"{verdict.records} records", *self._completeness(), *self.notes]
        if verdict.recoveries:
            lines = ", ".join(str(n) for n in verdict.recoveries)
            notes.append(f"torn tail recovered at line {lines}")
        if not verdict.authenticated:
            notes.append(f"chain only, not authenticated: {self._key_words()}")
        word = "ok" if self.complete else "incomplete"
        return f"{self.path}: {word} ({'; '.join(notes)})"

    def _key_words(self) -> str:
        key_id = self.verdict.key_id
        if key_id is None:
            return "the log is not keyed"
        if self.local_key_id is None:
            return f"keyed ({key_id}), and this guard's home has no key"
        return (
            f"keyed by another guard home ({key_id}, this one is {self.local_key_id})"
        )

    def _completeness(self) -> list[str]:
        words = []
        if self.dangling:
            listed = ", ".join(_start_words(s, self.pending) for s in self.dangling)
            words.append(
                f"{len(self.dangling)} command(s) started without a finish: "
                f"{listed} (the guard or the machine stopped while it ran; "
                "its outcome is unknown)"
            )
        if self.running:
            seqs = ", ".join(str(start.seq) for start in self.running)
            words.append(f"{len(self.running)} still running (seq {seqs})")
        return words

    def as_json(self) -> dict[str, Any]:
        """Return the report as a JSON object."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "complete": self.complete,
            "records": self.verdict.records,
            "head": self.head,
            "error": self.verdict.error,
            "error_line": self.verdict.error_line,
            "torn": self.verdict.torn,
            "recoveries": list(self.verdict.recoveries),
            "expected_head": self.expected_head,
            "anchor_line": self.anchor_line,
            "cut": self.cut,
            "key_id": self.verdict.key_id,
            "authenticated": self.verdict.authenticated,
            "dangling": [_start_json(s, self.pending) for s in self.dangling],
            "running": [_start_json(s, self.pending) for s in self.running],
            "notes": list(self.notes),
        }


def _start_words(start: OpenStart, pending: frozenset[int]) -> str:
    kept = ", finish kept in guard's home" if start.seq in pending else ""
    return f"seq {start.seq} (line {start.line}{kept})"


def _start_json(start: OpenStart, pending: frozenset[int]) -> dict[str, Any]:
    return {
        "seq": start.seq,
        "line": start.line,
        "ts": start.ts,
        "pid": start.pid,
        "argv": list(start.argv),
        "finish_pending": start.seq in pending,
    }


def split_lines(data: bytes) -> list[bytes]:
    r"""Split file bytes into lines on ``\n`` only, keeping the newlines."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


@dataclass(slots=True)
class _Scan:
    """What one pass over a file collects besides the chain verdict."""

    expect_head: str | None
    home_head: Head | None
    anchor_line: int = 0
    home_seen: bool = False
    starts: StartTracker = field(default_factory=StartTracker)
    recovered: list[tuple[int, Mapping[str, Any]]] = field(default_factory=list)

    def take(self, records: Iterator[tuple[int, dict[str, Any]]]) -> None:
        home = self.home_head
        for number, record in records:
            self.starts.add(number, record)
            if home is not None and record.get("seq") == home.seq:
                self.home_seen = record.get("sha256") == home.sha256
            if record.get("event") == "log.recovered":
                self.recovered.append((number, record))
            if (
                self.expect_head is not None
                and self.expect_head != GENESIS
                and record.get("sha256") == self.expect_head
            ):
                self.anchor_line = number


def verify_file(
    path: Path,
    expect_head: str | None = None,
    registry: SchemaRegistry | None = None,
    *,
    key: ChainKey | str | None = _HOME,
    foreign: bool = False,
) -> FileReport:
    """Verify one log file, reading it line by line.

    Args:
        path: the file.
        expect_head: an anchor (a head hash stored earlier) that must still
            be in the file.
        registry: the schema registry (default: the built-in events).
        key: the chain key to authenticate with (default: the one in
            guard's home, if any; None: authenticate nothing).
        foreign: the logs come from elsewhere (see :class:`FileReport`).

    Returns:
        The report.

    Raises:
        AuditError: the file cannot be read.
    """
    if registry is None:
        from statetrace_guard.audit.record import DEFAULT_REGISTRY  # noqa: PLC0415 - pydantic only when verifying

        registry = DEFAULT_REGISTRY
    chain_key = _home_key() if key == _HOME else key
    if isinstance(chain_key, str):  # pragma: no cover - only _HOME is a string
        chain_key = None
    check = ChainCheck(key=chain_key, validate=registry.problem, layout=True)
    scan = _Scan(expect_head, read_head(path))
    with _opened(path) as stream:
        scan.take(check.records(stream))
    verdict = check.verdict
    cut = _cut(scan) if verdict.intact else None
    dangling, running, pending = _open_starts(path, scan.starts.open)
    return FileReport(
        path,
        verdict,
        expect_head,
        scan.anchor_line,
        _torn_notes(path, scan.recovered),
        chain_key.key_id if chain_key is not None else None,
        foreign,
        dangling,
        running,
        pending,
        cut,
    )


def _cut(scan: _Scan) -> str | None:
    """Why the file falls short of the head guard's home anchored, if it does."""
    head = scan.home_head
    if head is None or scan.home_seen:
        return None
    return (
        f"guard's home anchored seq {head.seq} ({head.sha256[:12]}...) for this "
        "log and the file does not hold it: records were cut from its end, or it "
        "was replaced"
    )


class _opened:  # noqa: N801 - used like open()
    """``path`` opened for reading; an unreadable file is an AuditError."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stream: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        try:
            self._stream = self._path.open("rb")
        except OSError as exc:
            raise _unreadable(self._path, exc) from exc
        return self._stream

    def __exit__(self, kind: object, error: object, _tb: object) -> None:
        if self._stream is not None:
            self._stream.close()
        if isinstance(error, OSError):
            raise _unreadable(self._path, error) from error


def _unreadable(path: Path, exc: OSError) -> AuditError:
    return AuditError(
        f"cannot read {path}: {exc.strerror or exc}",
        hint="check the path and that this user may read the log directory",
    )


def _home_key() -> ChainKey | None:
    from statetrace_guard.audit.keys import find_chain_key  # noqa: PLC0415 - lazy

    return find_chain_key()


def _open_starts(
    path: Path, starts: list[OpenStart]
) -> tuple[tuple[OpenStart, ...], tuple[OpenStart, ...], frozenset[int]]:
    """Split open starts into dangling and running; note finishes kept at home."""
    if not starts:
        return (), (), frozenset()
    from statetrace_guard.audit.pending import parked_seqs  # noqa: PLC0415 - rare

    running = tuple(start for start in starts if still_running(start))
    dangling = tuple(start for start in starts if start not in running)
    return dangling, running, frozenset(parked_seqs(path))


def _torn_notes(
    path: Path, recovered: Iterable[tuple[int, Mapping[str, Any]]]
) -> tuple[str, ...]:
    """Check that each recovered torn tail is kept in its side file."""
    notes: list[str] = []
    for number, record in recovered:
        side = path.with_name(Path(str(record.get("torn_file", ""))).name)
        try:
            chunks = side.read_bytes().split(b"\n")
        except OSError:
            chunks = []
        digests = {hashlib.sha256(chunk).hexdigest() for chunk in chunks}
        if record.get("torn_sha256") not in digests:
            notes.append(f"line {number}: torn bytes not found in {side.name}")
    return tuple(notes)


def discover(log_dir: Path) -> list[Path]:
    """Return every chained log file under a log directory, sorted."""
    found: list[Path] = []
    for subdir, pattern in LOG_PATTERNS:
        found.extend(sorted((log_dir / subdir).glob(pattern)))
    return found


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Replace directories by the log files in them."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            logs = discover(path)
            out.extend(
                logs
                or sorted(
                    p for p in path.glob("*.json*") if p.suffix in {".json", ".jsonl"}
                )
            )
        else:
            out.append(path)
    return out


def verify_paths(
    paths: Iterable[Path],
    expect: Mapping[Path, str] | None = None,
    registry: SchemaRegistry | None = None,
    *,
    foreign: bool = False,
) -> list[FileReport]:
    """Verify files and directories (a directory means its log files).

    Args:
        paths: files, or log directories to search.
        expect: anchors by file path.
        registry: the schema registry.
        foreign: the logs come from elsewhere (see :class:`FileReport`).

    Returns:
        One report per file, in order.

    Raises:
        AuditError: a file cannot be read.
    """
    anchors = {path.resolve(): head for path, head in (expect or {}).items()}
    key = _home_key()
    targets = list(paths)
    reports = [
        verify_file(
            path, anchors.get(path.resolve()), registry, key=key, foreign=foreign
        )
        for path in _expand(targets)
    ]
    return reports + _missing(targets)


def _missing(targets: Iterable[Path]) -> list[FileReport]:
    """Logs guard's home anchored inside the log directories given, now gone."""
    folders = {
        (target / subdir).resolve()
        for target in targets
        if target.is_dir()
        for subdir, _ in LOG_PATTERNS
    }
    if not folders:
        return []
    missing = []
    for head in anchored_heads():
        if head.log.parent in folders and not head.log.exists():
            error = (
                f"missing: guard's home anchored seq {head.seq} of this log; it "
                "was deleted or moved (if on purpose, remove its anchor from "
                "guard's home, heads/)"
            )
            missing.append(FileReport(head.log, ChainVerdict(0, GENESIS, error)))
    return sorted(missing, key=lambda report: report.path)


def format_anchor(report: FileReport) -> str:
    """Return ``<head>  <path>``, the line ``--anchor`` prints for a file."""
    return f"{report.head}  {report.path}"


def parse_anchors(text: str) -> dict[Path, str]:
    """Read ``--anchor`` output back: ``<head>  <path>`` per line.

    Raises:
        AuditError: a line is not in that form.
    """
    anchors: dict[Path, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, sep, name = line.partition("  ")
        if not sep or len(head) != len(GENESIS) or not name:
            raise AuditError(f"anchor line {number} is not '<sha256>  <path>'")
        anchors[Path(name)] = head
    return anchors
