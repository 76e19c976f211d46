"""Which commands of a session log started and never finished.

Every ``command.started`` should be followed, sooner or later, by exactly
one ``command.finished``; the finish names its start (``started_seq``).
A start without a finish is *dangling*: the guard, or the machine, stopped
while the command ran, and nobody learnt how it ended. ``guard verify`` and
``guard log`` report dangling starts instead of calling the log complete;
a start whose guard process is still alive is only *running*.

Logs written before finishes named their start are paired by the guard's
pid and argv, oldest first (the order a single guard writes them in).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "OpenStart",
    "StartTracker",
    "open_start_of",
    "open_starts",
    "still_running",
]

STARTED = "command.started"
FINISHED = "command.finished"


@dataclass(frozen=True, slots=True)
class OpenStart:
    """A ``command.started`` with no ``command.finished`` (yet).

    Attributes:
        seq: the start record's seq.
        line: its 1-based line in the file.
        ts: its time.
        pid: the guard process that wrote it (``pid`` field), if recorded.
        argv: the command.
    """

    seq: int
    line: int
    ts: str
    pid: int | None
    argv: tuple[str, ...]


class StartTracker:
    """Pairs finishes with starts as records stream past (bounded memory).

    Only the starts still open are kept: at most the commands in flight at
    any one moment of the session.
    """

    def __init__(self) -> None:
        """Nothing open yet."""
        self._open: dict[int, OpenStart] = {}
        self.unpaired_finishes: list[int] = []

    def add(self, line: int, record: Mapping[str, Any]) -> None:
        """Take one record (any event) in file order."""
        event = record.get("event")
        if event == STARTED:
            seq = record.get("seq")
            if isinstance(seq, int):
                self._open[seq] = _open_start(line, seq, record)
        elif event == FINISHED:
            self._finish(line, record)

    def _finish(self, line: int, record: Mapping[str, Any]) -> None:
        started = record.get("started_seq")
        if isinstance(started, int) and not isinstance(started, bool):
            if self._open.pop(started, None) is None:
                self.unpaired_finishes.append(line)
            return
        argv = _argv(record)
        pid = record.get("pid")
        match = next(
            (s for s in self._open.values() if s.argv == argv and s.pid == pid),
            None,
        )
        if match is None:
            self.unpaired_finishes.append(line)
            return
        del self._open[match.seq]

    @property
    def open(self) -> list[OpenStart]:
        """The starts without a finish so far, oldest first."""
        return sorted(self._open.values(), key=lambda start: start.seq)


def open_starts(records: Iterable[tuple[int, Mapping[str, Any]]]) -> list[OpenStart]:
    """The starts without a finish among ``(line, record)`` pairs."""
    tracker = StartTracker()
    for line, record in records:
        tracker.add(line, record)
    return tracker.open


def _argv(record: Mapping[str, Any]) -> tuple[str, ...]:
    value = record.get("argv")
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def open_start_of(record: Mapping[str, Any], line: int = 0) -> OpenStart:
    """The open start a ``command.started`` record describes."""
    seq = record.get("seq")
    return _open_start(line, seq if isinstance(seq, int) else -1, record)


def _open_start(line: int, seq: int, record: Mapping[str, Any]) -> OpenStart:
    pid = record.get("pid")
    return OpenStart(
        seq=seq,
        line=line,
        ts=str(record.get("ts", "")),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        argv=_argv(record),
    )


def still_running(start: OpenStart) -> bool:
    """True when the guard process that wrote ``start`` is alive on this machine.

    A live pid counts only if that process began before the start record
    (a pid reused later, or after a reboot, is someone else). Where the
    process's start time cannot be read, a live pid counts.
    """
    if start.pid is None or start.pid <= 0:
        return False
    try:
        os.kill(start.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: the time check below decides
    began = _process_start(start.pid)
    if began is None:
        return True
    try:
        recorded = datetime.fromisoformat(start.ts).timestamp()
    except ValueError:
        return True
    return began <= recorded + 1.0  # clock ticks are coarse


def _process_start(pid: int) -> float | None:
    """The process's start as a Unix time (Linux ``/proc``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:  # noqa: PTH123 - /proc
            fields = handle.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as handle:  # noqa: PTH123 - /proc
            boot = next(
                int(line.split()[1]) for line in handle if line.startswith(b"btime ")
            )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
