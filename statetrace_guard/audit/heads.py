"""Each log's latest head, anchored in guard's home.

Keys (``mac``) stop a rewrite from being re-sealed, but not a cut: dropping
a log's last records, or the whole file, leaves a chain whose macs all hold.
So every append also records the log's new head (its seq and sha256) in
guard's home, where no guarded program can write: ``guard verify`` on this
machine then finds a log cut below its anchored head, or an anchored log
that is gone.

One small file per log, ``<home>/heads/<hash of the log's path>``, holding
``<seq> <sha256> <path>``. The writer keeps it open and rewrites it in
place with one ``pwrite`` under the log's own lock (a few microseconds per
record); the seq is padded so the line never shrinks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from statetrace_guard.paths import guard_home

__all__ = ["Head", "HeadAnchor", "anchored_heads", "read_head"]

_SEQ_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Head:
    """A log's head as last written by this installation."""

    seq: int
    sha256: str
    log: Path


def _folder() -> Path:
    return guard_home() / "heads"


def _name(log_path: Path) -> str:
    return _name_of_real(os.path.realpath(log_path))


def _name_of_real(real: str) -> str:
    return hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32]


class HeadAnchor:
    """Keeps one log's head in guard's home (best effort: never fails a write)."""

    def __init__(self, log_path: Path) -> None:
        """Nothing is opened until the first head is written."""
        self._log = os.path.realpath(log_path)
        self._file = _folder() / _name_of_real(self._log)
        self._fd: int | None = None

    def write(self, seq: int, sha256: str) -> None:
        """Record the log's new head (called under the log's lock)."""
        line = f"{seq:0{_SEQ_WIDTH}d} {sha256} {self._log}\n".encode(
            "utf-8", "surrogateescape"
        )
        try:
            if self._fd is None:
                self._fd = self._open()
            os.pwrite(self._fd, line, 0)
        except OSError:
            # The record itself is on disk; only truncation detection is lost
            # for this append (guard's home full or read-only).
            self.close()

    def _open(self) -> int:
        try:
            return os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first anchor of this home
            self._file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        """Close the anchor file."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _parse(data: bytes) -> Head | None:
    parts = data.rstrip(b"\n").split(b" ", 2)
    try:
        seq, digest, log = int(parts[0]), parts[1].decode("ascii"), parts[2]
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    if len(digest) != 64:  # noqa: PLR2004 - a SHA-256 in hex
        return None
    return Head(seq, digest, Path(log.decode("utf-8", "surrogateescape")))


def read_head(log_path: Path) -> Head | None:
    """The head this installation last wrote to ``log_path``, if any."""
    try:
        data = (_folder() / _name(log_path)).read_bytes()
    except OSError:
        return None
    return _parse(data)


def anchored_heads() -> Iterator[Head]:
    """Every log head this installation has anchored."""
    try:
        entries = list(os.scandir(_folder()))
    except OSError:
        return
    for entry in entries:
        try:
            with open(entry.path, "rb") as handle:  # noqa: PTH123 - scandir entry
                head = _parse(handle.read())
        except OSError:
            continue
        if head is not None:
            yield head
