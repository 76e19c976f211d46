"""``guard verify``: check log files' schema, chain, sequence and time order.

A file is intact when every line is a valid record of its event's schema,
chains to the line before, has the next ``seq`` and no earlier time, and the
last line is complete. A recovered torn tail (a ``log.recovered`` record) is
reported, not failed. An anchor is a file's head hash stored elsewhere; with
one, a file is intact only if a record with that hash is still in it, so
truncating the tail (which the chain alone cannot show) is detected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statetrace_guard.audit.chain import GENESIS, ChainVerdict, verify_lines
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


@dataclass(frozen=True, slots=True)
class FileReport:
    """What verify found in one file.

    Attributes:
        path: the file.
        verdict: the chain check's result.
        expected_head: the anchor checked, if any.
        anchor_line: the line holding the anchor (0 when not found or none).
        notes: warnings that do not fail the file (a torn side file missing).
    """

    path: Path
    verdict: ChainVerdict
    expected_head: str | None = None
    anchor_line: int = 0
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Return True when the file is intact (and holds its anchor, if given)."""
        return self.verdict.intact and (
            self.expected_head is None or self.anchor_line > 0
        )

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
        notes = f"{verdict.records} records"
        if verdict.recoveries:
            lines = ", ".join(str(n) for n in verdict.recoveries)
            notes += f", torn tail recovered at line {lines}"
        return f"{self.path}: ok ({'; '.join([notes, *self.notes])})"

    def as_json(self) -> dict[str, Any]:
        """Return the report as a JSON object."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "records": self.verdict.records,
            "head": self.head,
            "error": self.verdict.error,
            "error_line": self.verdict.error_line,
            "torn": self.verdict.torn,
            "recoveries": list(self.verdict.recoveries),
            "expected_head": self.expected_head,
            "anchor_line": self.anchor_line,
        }


def split_lines(data: bytes) -> list[bytes]:
    r"""Split file bytes into lines on ``\\n`` only, keeping the newlines."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def verify_file(
    path: Path,
    expect_head: str | None = None,
    registry: SchemaRegistry | None = None,
) -> FileReport:
    """Verify one log file.

    Args:
        path: the file.
        expect_head: an anchor (a head hash stored earlier) that must still
            be in the file.
        registry: the schema registry (default: the built-in events).

    Returns:
        The report.

    Raises:
        AuditError: the file cannot be read.
    """
    if registry is None:
        from statetrace_guard.audit.record import DEFAULT_REGISTRY  # noqa: PLC0415 - pydantic only when verifying

        registry = DEFAULT_REGISTRY
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="check the path and that this user may read the log directory",
        ) from exc
    lines = split_lines(data)
    verdict = verify_lines(lines, registry.problem)
    anchor_line = _find_anchor(lines, expect_head, verdict) if expect_head else 0
    notes = _torn_notes(path, lines, verdict.recoveries)
    return FileReport(path, verdict, expect_head, anchor_line, notes)


def _torn_notes(
    path: Path, lines: Sequence[bytes], recoveries: Sequence[int]
) -> tuple[str, ...]:
    """Check that each recovered torn tail is kept in its side file."""
    notes: list[str] = []
    for number in recoveries:
        record = json.loads(lines[number - 1])
        side = path.with_name(Path(str(record.get("torn_file", ""))).name)
        try:
            chunks = side.read_bytes().split(b"\n")
        except OSError:
            chunks = []
        digests = {hashlib.sha256(chunk).hexdigest() for chunk in chunks}
        if record.get("torn_sha256") not in digests:
            notes.append(f"line {number}: torn bytes not found in {side.name}")
    return tuple(notes)


def _find_anchor(lines: Sequence[bytes], head: str, verdict: ChainVerdict) -> int:
    """Return the 1-based line whose record has sha256 ``head``, else 0."""
    if head == GENESIS:
        return 0
    needle = f'"sha256":"{head}"'.encode()
    for number, line in enumerate(lines[: verdict.records], start=1):
        if needle in line and json.loads(line).get("sha256") == head:
            return number
    return 0


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
) -> list[FileReport]:
    """Verify files and directories (a directory means its log files).

    Args:
        paths: files, or log directories to search.
        expect: anchors by file path.
        registry: the schema registry.

    Returns:
        One report per file, in order.

    Raises:
        AuditError: a file cannot be read.
    """
    anchors = {path.resolve(): head for path, head in (expect or {}).items()}
    return [
        verify_file(path, anchors.get(path.resolve()), registry)
        for path in _expand(paths)
    ]


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
