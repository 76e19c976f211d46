"""Finishes kept in guard's home until their log can take them.

A ``command.finished`` must not be lost because the log could not be
written when the program ended (the session's lock held for minutes, the
log's disk full or remounted read-only). Such a finish is *parked*: its
record, ready to seal, is saved under guard's home (normally another file
system, and never writable by guarded programs), and written into the log
later (the next record written to that log first writes the finishes
parked for it; the resident helper retries on its own), exactly once:
the finish names its start (``started_seq``) and is appended only if no
finish for that start is there yet.

Layout: ``<home>/pending/<hash of the log's path>/<started_seq>.json``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.home import guard_home_text

__all__ = ["Parked", "has_parked", "park", "parked", "parked_folder", "parked_seqs"]


@dataclass(frozen=True, slots=True)
class Parked:
    """One finish waiting in guard's home.

    Attributes:
        file: where it is kept.
        started_seq: the start it ends.
        since: the start's byte offset in the log (where to search from).
        record: the record's content, redacted, not yet sealed.
    """

    file: Path
    started_seq: int
    since: int
    record: dict[str, Any]

    def discard(self) -> None:
        """Forget it (it is in the log now, or was already)."""
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        with contextlib.suppress(OSError):
            self.file.parent.rmdir()  # only when it was the last one


def parked_folder(log_path: Path) -> Path:
    """Where the finishes kept for ``log_path`` wait (absent when none do)."""
    return _folder_of(guard_home_text(), str(log_path))


_folder = parked_folder


@functools.lru_cache(maxsize=256)
def _folder_of(home: str, log_path: str) -> Path:
    """The folder of a log's parked finishes (cached: resolving costs a dozen stats)."""
    name = os.path.realpath(log_path).encode("utf-8", "surrogateescape")
    return Path(home) / "pending" / hashlib.sha256(name).hexdigest()[:24]


def park(
    log_path: Path, record: Mapping[str, Any], started_seq: int, since: int
) -> Path:
    """Keep a finish for ``log_path`` in guard's home; return where.

    Raises:
        OSError: guard's home cannot be written either.
    """
    folder = _folder(log_path)
    final = folder / f"{started_seq}.json"
    temp = folder / f".{started_seq}.{os.getpid()}.tmp"
    try:
        return _write(final, temp, log_path, record, started_seq, since)
    except FileNotFoundError:
        # Its folder went away between our mkdir and our write (the last
        # finish kept there was just written out): once more.
        return _write(final, temp, log_path, record, started_seq, since)


def _write(
    final: Path,
    temp: Path,
    log_path: Path,
    record: Mapping[str, Any],
    started_seq: int,
    since: int,
) -> Path:
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = {
        "log": str(log_path),
        "started_seq": started_seq,
        "since": since,
        "record": dict(record),
    }
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(content, ensure_ascii=False).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    temp.replace(final)
    return final


def has_parked(log_path: Path) -> bool:
    """True when finishes may wait for ``log_path`` (one ``stat``: cheap per record).

    The folder is removed when its last finish is written, so its existence
    is the answer.
    """
    return _folder(log_path).is_dir()


def parked(log_path: Path) -> list[Parked]:
    """The finishes waiting for ``log_path``, oldest start first."""
    found: list[Parked] = []
    try:
        entries = list(os.scandir(_folder(log_path)))
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(".json"):
            continue
        item = _read(Path(entry.path))
        if item is not None:
            found.append(item)
    return sorted(found, key=lambda item: item.started_seq)


def parked_seqs(log_path: Path) -> set[int]:
    """The starts of ``log_path`` whose finish waits in guard's home."""
    return {item.started_seq for item in parked(log_path)}


def _read(file: Path) -> Parked | None:
    try:
        content = json.loads(file.read_bytes())
        return Parked(
            file=file,
            started_seq=int(content["started_seq"]),
            since=int(content.get("since", 0)),
            record=dict(content["record"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
