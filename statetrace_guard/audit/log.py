"""Locked, whole-line, chained appends to one JSON Lines log file.

An append takes the file's lock (filelock's protocol on ``<file>.lock``, a
bounded wait; see :func:`_wait_for_lock`),
reads the chain position from the file's last line (or reuses the one it
wrote last when the file has not changed since), seals the record, and writes
the whole line with one ``write`` on an ``O_APPEND`` descriptor; ``durable``
adds an fsync before the lock is released. The record's ``ts`` is set under
the lock so that the time order of a file always matches its line order.

A writer killed mid-append leaves at most one partial last line (no newline).
The next append moves those bytes to ``<file>.torn``, truncates them away,
and writes a ``log.recovered`` record saying so before its own record.
A short write (disk full) is truncated back before the error is raised, so a
failed append never leaves a partial line behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.audit.chain import (
    RECOVERED_EVENT,
    SCHEMA_VERSION,
    ChainState,
    now_ms,
    render,
    seal,
)
from statetrace_guard.errors import AuditError

__all__ = ["TORN_SUFFIX", "ChainWriter", "Tail", "read_tail"]

TORN_SUFFIX = ".torn"
_BLOCK = 65536


@dataclass(frozen=True, slots=True)
class Tail:
    """The end of a log file: its last complete line and any torn bytes.

    Attributes:
        last_line: the last line that ends in a newline, or None.
        complete_size: the file size up to and including that newline.
        torn: bytes after the last newline (a partial line), empty if none.
    """

    last_line: bytes | None
    complete_size: int
    torn: bytes


def read_tail(fd: int, size: int) -> Tail:
    """Read the last complete line and any torn bytes of an open file.

    Args:
        fd: a readable descriptor.
        size: the file's current size.

    Returns:
        The tail; reads backwards in blocks until it has a whole line.
    """
    data = b""
    start = size
    while start > 0:
        start = max(0, start - _BLOCK)
        data = _read_at(fd, start, size - start - len(data)) + data
        cut = data.rfind(b"\n")
        if cut != -1 and (start == 0 or data.rfind(b"\n", 0, cut) != -1):
            break
    cut = data.rfind(b"\n")
    if cut == -1:
        return Tail(None, 0, data)
    previous = data.rfind(b"\n", 0, cut)
    complete_size = start + cut + 1
    return Tail(data[previous + 1 : cut + 1], complete_size, data[cut + 1 :])


def _read_at(fd: int, offset: int, length: int) -> bytes:
    """Read ``length`` bytes at ``offset`` (portable: no pread on Windows)."""
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while length > 0:
        chunk = os.read(fd, length)
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


@dataclass(slots=True)
class _Descriptors:
    """The lock and log descriptors a writer keeps open (mutable on purpose)."""

    lock: int | None = None
    log: int | None = None
    identity: tuple[int, int] = (0, 0)

    def close(self) -> None:
        """Close whatever is open."""
        for fd in (self.lock, self.log):
            if fd is not None:
                os.close(fd)
        self.lock = self.log = None


@dataclass(frozen=True, slots=True)
class _Cache:
    """What this writer knows about the file after its last append."""

    inode: int
    size: int
    state: ChainState


class ChainWriter:
    """Appends chained records to one log file, safely across processes."""

    def __init__(
        self,
        path: Path,
        header: Callable[[str], Mapping[str, Any]],
        *,
        durable: bool = False,
        lock_timeout: float = 10.0,
        clock: Callable[[], str] = now_ms,
        identity: Mapping[str, Any] | None = None,
        time_key: str = "ts",
    ) -> None:
        """Prepare a writer; nothing is opened until the first append.

        Args:
            path: the log file.
            header: builds the unsealed header record from a timestamp; used
                when the file is new (or held only a torn header).
            durable: fsync every append (and the directory on creation).
            lock_timeout: seconds to wait for the lock before AuditError.
            clock: returns the current time, RFC 3339 with milliseconds.
            time_key: the record key that gets the time (NetOps: ``Timestamp``).
            identity: fields naming the file's subject (``session_id``...)
                copied into the ``log.recovered`` records this writer adds.
        """
        self.path = path
        self._header = header
        self._durable = durable
        self._clock = clock
        self._lock_timeout = lock_timeout
        self._lock_path = f"{path}.lock"
        self._fds = _Descriptors()
        self._closer = weakref.finalize(self, self._fds.close)
        self._thread_lock = threading.Lock()
        self._cache: _Cache | None = None
        self._identity = dict(identity or {})
        self._time_key = time_key

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Seal and append one record; return it as written.

        Raises:
            AuditError: the lock was not obtained in time, or the file or its
                directory cannot be written (read-only, disk full, ...).
        """
        with self._thread_lock:  # the file lock is per descriptor, not per thread
            return self._append_with_file_lock(record)

    def _append_with_file_lock(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append while holding ``<file>.lock``."""
        lock_fd = self._lock()
        try:
            return self._append_locked(record)
        finally:
            _unlock(lock_fd)

    def close(self) -> None:
        """Close the descriptors this writer keeps open between appends."""
        self._closer()

    def _lock(self) -> int:
        """Take ``<file>.lock`` (filelock's native lock), waiting a bounded time."""
        if self._fds.lock is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fds.lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _audit_error("open the lock of", self.path, exc) from exc
        _wait_for_lock(self._fds.lock, self._lock_timeout, self._lock_path)
        return self._fds.lock

    def _log_fd(self) -> tuple[int, os.stat_result]:
        """Return the open log descriptor, reopened if the file was replaced."""
        fds = self._fds
        if fds.log is not None:
            stat = _stat_or_none(self.path)
            if stat is not None and (stat.st_ino, stat.st_dev) == fds.identity:
                return fds.log, stat
            os.close(fds.log)
            fds.log = None
        try:
            fds.log = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            stat = os.fstat(fds.log)
        except OSError as exc:
            raise _audit_error("open", self.path, exc) from exc
        fds.identity = (stat.st_ino, stat.st_dev)
        return fds.log, stat

    def _append_locked(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append under the lock: find the chain position, recover, write."""
        fd, stat = self._log_fd()
        state, size = self._position(fd, stat.st_ino, stat.st_size)
        sealed = self._seal(record, state)
        size = self._write(fd, render(sealed), size)
        self._cache = _Cache(stat.st_ino, size, ChainState.after(sealed))
        return sealed

    def _position(self, fd: int, inode: int, size: int) -> tuple[ChainState, int]:
        """Return the chain state and size after any header or recovery writes."""
        cache = self._cache
        if cache is not None and cache.inode == inode and cache.size == size:
            return cache.state, size
        tail = read_tail(fd, size)
        if tail.torn:
            size = self._recover(fd, tail)
        if tail.last_line is None:
            if self._durable:
                _fsync_dir(self.path.parent)
            header = seal(self._header(self._clock()), ChainState.empty())
            size = self._write(fd, render(header), size)
            state = ChainState.after(header)
        else:
            state = _state_of(tail.last_line, self.path)
        if tail.torn:
            content = {**self._identity, **_recovered_record(self.path, tail)}
            recovered = self._seal(content, state)
            size = self._write(fd, render(recovered), size)
            state = ChainState.after(recovered)
        return state, size

    def _seal(self, record: Mapping[str, Any], state: ChainState) -> dict[str, Any]:
        """Seal with a timestamp never earlier than the previous line's."""
        stamped = dict(record)
        key = "ts" if record.get("event") == RECOVERED_EVENT else self._time_key
        stamped[key] = max(self._clock(), state.ts)
        return seal(stamped, state)

    def _recover(self, fd: int, tail: Tail) -> int:
        """Move the torn bytes to the side file and truncate them away."""
        side = Path(f"{self.path}{TORN_SUFFIX}")
        try:
            with side.open("ab") as handle:
                handle.write(tail.torn + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.ftruncate(fd, tail.complete_size)
        except OSError as exc:
            raise _audit_error("recover the torn tail of", self.path, exc) from exc
        return tail.complete_size

    def _write(self, fd: int, line: bytes, size: int) -> int:
        """Write one whole line; on failure cut the file back to ``size``."""
        try:
            _write_whole(fd, line)
            if self._durable:
                os.fsync(fd)
        except OSError as exc:
            _truncate_quietly(fd, size)
            raise _audit_error("write", self.path, exc) from exc
        return size + len(line)


def _state_of(line: bytes, path: Path) -> ChainState:
    """Return the chain state after a complete last line, or refuse to chain."""
    try:
        record = json.loads(line)
        return ChainState.after(record)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(
            f"{path}: the last line is not a valid record; cannot continue the chain",
            hint="run `guard verify` on the file and move the damaged file aside",
        ) from exc


def _recovered_record(path: Path, tail: Tail) -> dict[str, Any]:
    """Describe a recovered torn tail."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event": RECOVERED_EVENT,
        "torn_file": f"{path.name}{TORN_SUFFIX}",
        "torn_bytes": len(tail.torn),
        "torn_offset": tail.complete_size,
        "torn_sha256": hashlib.sha256(tail.torn).hexdigest(),
        "pid": os.getpid(),
    }


def _write_whole(fd: int, line: bytes) -> None:
    """Write ``line`` with one write; a short write is an error (disk full)."""
    if os.write(fd, line) != len(line):
        raise OSError(errno.ENOSPC, "short write (file system full?)")


def _stat_or_none(path: Path) -> os.stat_result | None:
    """Return the file's status, None when it is gone or cannot be checked."""
    try:
        return path.stat()
    except OSError:
        return None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only

    def _try_lock(fd: int) -> bool:
        """Take filelock's native lock (LockFileEx) without waiting."""
        from filelock import lock_descriptor  # noqa: PLC0415 - only where needed

        return lock_descriptor(fd, blocking=False)

    def _unlock(fd: int) -> None:
        """Release filelock's native lock."""
        from filelock import unlock_descriptor  # noqa: PLC0415 - only where needed

        unlock_descriptor(fd)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        """Take the exclusive flock without waiting; False when held elsewhere."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        """Release the flock."""
        fcntl.flock(fd, fcntl.LOCK_UN)


def _wait_for_lock(fd: int, timeout: float, where: str) -> None:
    """Poll the lock on ``<file>.lock`` with backoff until ``timeout``.

    NOTE(audit): this is filelock's lock protocol (``FileLock`` and
    ``filelock.lock_descriptor`` take the same whole-file ``flock`` on POSIX,
    ``LockFileEx`` on Windows, and contend with this one), taken on a
    descriptor kept open. ``FileLock`` itself costs about 130 us per acquire
    and release here, and importing filelock about as much as the rest of the
    record path; on POSIX the same primitive is called directly (~2 us).
    """
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            raise AuditError(
                f"timed out after {timeout:g}s waiting for the lock {where}",
                hint="another guard holds the log; retry, or raise the lock timeout",
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _truncate_quietly(fd: int, size: int) -> None:
    """Cut a file back after a failed write; the original error is what counts."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        return


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _audit_error(action: str, path: Path, exc: OSError) -> AuditError:
    """Build the AuditError for a failed file operation."""
    return AuditError(
        f"cannot {action} {path}: {exc.strerror or exc}",
        hint="check that the log directory is writable, not full, and not locked",
    )
