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
failed append never leaves a partial line behind. A new file appears only
with its header in it (written to a side name, then linked into place), so
a full disk never leaves an empty log behind.

Records are keyed (see :mod:`statetrace_guard.audit.chain`): the header
names the key and each record carries a ``mac``. A writer continues only a
file keyed with its own key, and only after a canonical last line: anything
else (a log rewritten without the key, a CRLF conversion) is refused rather
than extended.

``append(..., reserve=N)`` first reserves N bytes of disk beyond the end of
the file (``fallocate`` with ``FALLOC_FL_KEEP_SIZE`` where the file system
has it): a ``command.started`` reserves the room its ``command.finished``
will need, so a disk that fills while the command runs cannot lose the
finish. ``append_once`` writes a record only if no record naming the same
start is there yet (two guard processes may both try to write a finish;
exactly one lands). ``exclusive()`` holds the lock across several steps (a
session's budget is checked and its start written as one step).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.audit.chain import (
    HEADER_EVENT,
    RECOVERED_EVENT,
    SCHEMA_VERSION,
    ChainKey,
    ChainState,
    now_ms,
    render,
    seal,
)
from statetrace_guard.audit.heads import HeadAnchor
from statetrace_guard.errors import AuditError

__all__ = ["NEW_SUFFIX", "TORN_SUFFIX", "ChainWriter", "Tail", "read_tail"]

TORN_SUFFIX = ".torn"
NEW_SUFFIX = ".new"  # a new file's header is written here, then linked
_BLOCK = 65536
# The bytes a line naming its start holds, in canonical JSON (sorted keys).
_STARTED_SEQ = b'"started_seq":'
_HOLD_STEPS = 4  # a reservation holds room for this many more


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


# NOTE(speed): the chain position each log was left at by any writer of this
# process, with the key it checked: the resident helper makes new writers
# for every command (a day's NetOps log, a long session's log), and each
# would read the file's first line and its tail again. Trusted only while
# the file is the same inode at the same size, as a writer's own cache is.
_LEFT_AT: dict[tuple[str, int], tuple[int, ChainState, str | None]] = {}
_LEFT_AT_LIMIT = 1024


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
        key: ChainKey | Callable[[], ChainKey | None] | None = None,
        anchor: bool = True,
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
            key: the chain key, or a function giving it on first use
                (default: this installation's key from guard's home).
            anchor: keep the file's head in guard's home after each append
                (see :mod:`statetrace_guard.audit.heads`).
        """
        self.path = path
        self._header = header
        self._durable = durable
        self._clock = clock
        self._lock_timeout = lock_timeout
        self._lock_path = f"{path}.lock"
        self._fds = _Descriptors()
        self._closer = weakref.finalize(self, self._fds.close)
        self._thread_lock = threading.RLock()  # exclusive() blocks nest
        self._cache: _Cache | None = None
        self._identity = dict(identity or {})
        self._time_key = time_key
        self._key_source = key
        self._key: ChainKey | None = None
        self._locked = False  # inside exclusive(): the lock is already held
        self._anchor: HeadAnchor | None = None
        if anchor:
            self._anchor = HeadAnchor(path)
            weakref.finalize(self, self._anchor.close)
        self.last_offset = 0  # where the last line this writer wrote begins
        self._held = (0, 0)  # disk held up to this size, for this inode
        self._next_hold = 0

    def append(self, record: Mapping[str, Any], *, reserve: int = 0) -> dict[str, Any]:
        """Seal and append one record; return it as written.

        Args:
            record: the record's content.
            reserve: bytes of disk to hold beyond the new end of the file
                for later records; taken before anything is written.

        Raises:
            AuditError: the lock was not obtained in time, or the file or its
                directory cannot be written (read-only, disk full, no room
                for the reservation, ...).
        """
        with self.exclusive():
            return self._append_locked(record, reserve)

    def append_once(
        self, record: Mapping[str, Any], started_seq: int, since: int = 0
    ) -> dict[str, Any] | None:
        """Append ``record`` unless a record naming ``started_seq`` is there.

        Args:
            record: holds ``started_seq`` (a finish names its start).
            started_seq: the seq of the start it belongs to.
            since: a byte offset at or before that start (its line's offset),
                so only what was written since is searched.

        Returns:
            The record as written, or None when one was there already.

        Raises:
            AuditError: as :meth:`append`.
        """
        with self.exclusive():
            if self.holds(started_seq, since):
                return None
            return self._append_locked(record, 0)

    def hold_next(self, length: int) -> None:
        """Hold ``length`` bytes of disk beyond the file's end with the next append.

        The next append (in this :meth:`exclusive` block) fails, writing
        nothing, when the disk has no room for them (see the module doc).
        """
        self._next_hold = length

    def _hold(self, fd: int, stat: os.stat_result, length: int) -> None:
        """Hold room beyond the end, in larger steps than asked.

        Most calls find enough held already and cost nothing (``fallocate``
        through ctypes costs tens of microseconds).
        """
        held_to, inode = self._held
        if inode == stat.st_ino and stat.st_size + length <= held_to:
            return
        step = length * _HOLD_STEPS
        _reserve(fd, stat.st_size, step, self.path)
        self._held = (stat.st_size + step, stat.st_ino)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the file's lock (and this writer) for several steps.

        Appends inside the block use the lock already held.

        Raises:
            AuditError: the lock was not obtained in time.
        """
        with self._thread_lock:  # the file lock is per descriptor, not per thread
            if self._locked:
                yield
                return
            lock_fd = self._lock()
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                _unlock(lock_fd)

    def close(self) -> None:
        """Close the descriptors this writer keeps open between appends.

        The writer stays usable: the next append opens them again.
        """
        with self._thread_lock:
            self._fds.close()  # idempotent; the finalizer covers collection
        if self._anchor is not None:
            self._anchor.close()

    def _lock(self) -> int:
        """Take ``<file>.lock`` (filelock's native lock), waiting a bounded time."""
        if self._fds.lock is None:
            try:
                self._fds.lock = _open_lock(self._lock_path, self.path.parent)
            except OSError as exc:
                raise _audit_error("open the lock of", self.path, exc) from exc
        _wait_for_lock(self._fds.lock, self._lock_timeout, self._lock_path)
        return self._fds.lock

    def _chain_key(self) -> ChainKey | None:
        """The key records are sealed with (loaded on first use)."""
        if self._key is None:
            source = self._key_source
            if source is None:
                from statetrace_guard.audit.keys import chain_key  # noqa: PLC0415 - cycle-free lazy load

                self._key = chain_key()
            elif isinstance(source, ChainKey):
                self._key = source
            else:
                self._key = source()
        return self._key

    def _log_fd(self) -> tuple[int, os.stat_result]:
        """Return the open log descriptor, reopened if the file was replaced.

        A file that does not exist yet is created with its header in it.
        """
        fds = self._fds
        if fds.log is not None:
            stat = _stat_or_none(self.path)
            if stat is not None and (stat.st_ino, stat.st_dev) == fds.identity:
                return fds.log, stat
            os.close(fds.log)
            fds.log = None
        try:
            fds.log = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            fds.log = self._create()
            if fds.log is None:  # created meanwhile by another writer
                return self._log_fd()
        except OSError as exc:
            raise _audit_error("open", self.path, exc) from exc
        stat = os.fstat(fds.log)
        fds.identity = (stat.st_ino, stat.st_dev)
        return fds.log, stat

    def _create(self) -> int | None:
        """Create the file whole: header written to a side name, then linked.

        Under the file's lock, so no other guard creates it meanwhile; a
        failure (disk full) leaves no file at all, never an empty one.

        Returns:
            The new file, open for appending, its chain state known (no
            read back); None when another writer created it meanwhile.
        """
        side = Path(f"{self.path}{NEW_SUFFIX}")
        header = self._header_record()
        line = render(header)
        fd = -1
        try:
            fd = os.open(side, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o640)
            _write_whole(fd, line)
            if self._durable:
                os.fsync(fd)
            os.link(side, self.path)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            if isinstance(exc, FileExistsError):
                return None  # created meanwhile by a writer that ignores the lock
            raise _audit_error("create", self.path, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                side.unlink()
        try:
            if self._durable:
                _fsync_dir(self.path.parent)
            inode = os.fstat(fd).st_ino
        except OSError as exc:
            os.close(fd)
            raise _audit_error("create", self.path, exc) from exc
        self._remember(_Cache(inode, len(line), ChainState.after(header)))
        return fd

    def _header_record(self) -> dict[str, Any]:
        """The sealed header of a new file, naming the key when there is one."""
        content = dict(self._header(self._clock()))
        key = self._chain_key()
        if key is not None:
            content["key_id"] = key.key_id
        return seal(content, ChainState.empty(), key)

    def _append_locked(self, record: Mapping[str, Any], reserve: int) -> dict[str, Any]:
        """Append under the lock: find the chain position, recover, write."""
        fd, stat = self._log_fd()
        hold, self._next_hold = max(reserve, self._next_hold), 0
        if hold:
            self._hold(fd, stat, hold)
        state, size = self._position(fd, stat.st_ino, stat.st_size)
        sealed = self._seal(record, state)
        line = render(sealed)
        self.last_offset = size
        size = self._write(fd, line, size)
        self._remember(_Cache(stat.st_ino, size, ChainState.after(sealed)))
        if self._anchor is not None:
            self._anchor.write(sealed["seq"], sealed["sha256"])
        return sealed

    def _remember(self, cache: _Cache) -> None:
        """Where this file is now left, for this writer and the process's next."""
        self._cache = cache
        if len(_LEFT_AT) >= _LEFT_AT_LIMIT:
            _LEFT_AT.clear()
        _LEFT_AT[(str(self.path), cache.inode)] = (
            cache.size,
            cache.state,
            self._key_id(),
        )

    def _key_id(self) -> str | None:
        key = self._chain_key()
        return key.key_id if key is not None else None

    def _position(self, fd: int, inode: int, size: int) -> tuple[ChainState, int]:
        """Return the chain state and size after any header or recovery writes."""
        cache = self._cache
        if cache is not None and cache.inode == inode and cache.size == size:
            return cache.state, size
        left = _LEFT_AT.get((str(self.path), inode))
        if left is not None and left[0] == size and left[2] == self._key_id():
            self._cache = _Cache(inode, size, left[1])
            return left[1], size
        self._check_key(fd)
        tail = read_tail(fd, size)
        if tail.torn:
            size = self._recover(fd, tail)
        if tail.last_line is None:
            # Empty (or only a torn header): a file older writers created
            # before its header could be written. Give it one.
            header = self._header_record()
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

    def _check_key(self, fd: int) -> None:
        """Refuse to extend a file keyed otherwise than this writer's records."""
        first = _read_at(fd, 0, _BLOCK).split(b"\n", 1)
        if len(first) < 2:  # noqa: PLR2004 - no complete first line: a new header follows
            return
        try:
            header = json.loads(first[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("event") != HEADER_EVENT:
            raise AuditError(
                f"{self.path}: line 1 is not a log header; cannot continue the chain",
                hint="run `guard verify` on the file and move the damaged file aside",
            )
        key = self._chain_key()
        ours = key.key_id if key is not None else None
        if header.get("key_id") != ours:
            raise AuditError(
                f"{self.path}: keyed {_key_words(header.get('key_id'))}, not with "
                "this guard's key; cannot continue its chain",
                hint="run `guard verify` on it; move it aside to start a new log",
            )

    def holds(self, started_seq: int, since: int = 0) -> bool:
        """True when a record naming ``started_seq`` is in the file after ``since``.

        Call it inside :meth:`exclusive` for an answer that stays true.

        Raises:
            AuditError: the file cannot be opened.
        """
        fd, stat = self._log_fd()
        needle = _STARTED_SEQ + str(started_seq).encode()
        offset = min(max(since, 0), stat.st_size)
        carry = b""
        while offset < stat.st_size:
            chunk = carry + _read_at(fd, offset, min(_BLOCK, stat.st_size - offset))
            offset += len(chunk) - len(carry)
            lines = chunk.split(b"\n")
            carry = lines.pop()
            if any(_names_start(line, needle, started_seq) for line in lines):
                return True
        return False

    def _seal(self, record: Mapping[str, Any], state: ChainState) -> dict[str, Any]:
        """Seal with a timestamp never earlier than the previous line's."""
        stamped = dict(record)
        key = "ts" if record.get("event") == RECOVERED_EVENT else self._time_key
        stamped[key] = max(self._clock(), state.ts)
        return seal(stamped, state, self._chain_key())

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
    """Return the chain state after a complete last line, or refuse to chain.

    The line must be a record in canonical form: a file converted to CRLF
    or re-serialised fails ``guard verify``, so extending it would only add
    records nobody can check.
    """
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or render(record) != line:
            raise ValueError("not canonical")  # noqa: TRY301 - one refusal below
        return ChainState.after(record)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(
            f"{path}: the last line is not a valid record; cannot continue the chain",
            hint="run `guard verify` on the file and move the damaged file aside",
        ) from exc


def _names_start(line: bytes, needle: bytes, started_seq: int) -> bool:
    """True when ``line`` is a record naming ``started_seq`` (exactly)."""
    at = line.find(needle)
    if at == -1 or line[at + len(needle) : at + len(needle) + 1] not in {b",", b"}"}:
        return False
    try:
        return bool(json.loads(line).get("started_seq") == started_seq)
    except (ValueError, AttributeError):
        return False


def _key_words(key_id: object) -> str:
    return f"with key {key_id}" if isinstance(key_id, str) else "without a key"


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


def _open_lock(lock_path: str, folder: Path) -> int:
    """Open (creating) a log's lock file; its folder is made only when missing."""
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)


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


def _reserve(fd: int, offset: int, length: int, path: Path) -> None:
    """Hold ``length`` bytes of disk from ``offset`` without growing the file.

    Raises:
        AuditError: the disk has no room for them (ENOSPC); nothing was
            written. A file system without the call reserves nothing.
    """
    try:
        _fallocate_keep_size(fd, offset, length)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _audit_error("reserve room in", path, exc) from exc


def _fallocate_keep_size(fd: int, offset: int, length: int) -> None:
    """``fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)`` (Linux), else nothing."""
    if not _FALLOCATE:
        _FALLOCATE.update(_load_fallocate())
    call = _FALLOCATE.get("call")
    if call is None:
        return
    if call(fd, 1, offset, length) != 0:  # 1: FALLOC_FL_KEEP_SIZE
        import ctypes  # noqa: PLC0415 - only after a failure

        error = ctypes.get_errno()
        if error not in {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}:
            raise OSError(error, os.strerror(error))


def _load_fallocate() -> dict[str, Any]:
    if not sys.platform.startswith("linux"):
        return {"call": None}
    import ctypes  # noqa: PLC0415 - Linux only

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.fallocate64
    except (OSError, AttributeError):
        return {"call": None}
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    call.restype = ctypes.c_int
    return {"call": call}


# Loaded on the first reservation (ctypes costs milliseconds to import).
_FALLOCATE: dict[str, Any] = {}


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
