"""What the helper must know about a client before running a program for it.

The resident helper can start a client's program as its own descendant,
which saves the client importing the runner and the sandbox. That program
must not end up anywhere the client itself could not be: the helper may have
been started from another terminal, container, cgroup or sandbox. So the
helper runs a program itself only when the client's process context equals
its own in everything a child inherits and cannot be given back later:
credentials and capabilities, no_new_privs and seccomp, namespaces, root
directory, cgroup, resource limits, nice value and CPU/memory placement.
Anything else (or anything unreadable) leaves the program to the client.
The umask is the one inherited value the helper copies instead.

Linux only: everything is read from ``/proc``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import NamedTuple

from statetrace_guard.sessions.operator import guard_run_cmdline

__all__ = ["PeerView", "examine", "inside_guarded_tree", "placement_refusal"]

_ACTIVE_MARKER = b"STATETRACE_GUARD_ACTIVE=1"
_MAX_ANCESTORS = 64
_READ_SIZE = 65536
_STATUS_FIELDS = (
    b"Uid",
    b"Gid",
    b"Groups",
    b"NoNewPrivs",
    b"Seccomp",
    b"Seccomp_filters",
    b"CapInh",
    b"CapPrm",
    b"CapEff",
    b"CapBnd",
    b"CapAmb",
    b"Cpus_allowed_list",
    b"Mems_allowed_list",
)
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
# Indexes into /proc/PID/stat after the command name: proc(5)'s fields 19
# (nice) and 41 (scheduling policy), less the three before the split.
_STAT_FIELDS = (16, 38)


def inside_guarded_tree(pid: int) -> bool:
    """True when ``pid`` runs under a guard.

    Either its environment carries the marker ``guard run`` sets, or one of
    its ancestors is a ``guard run`` or the launcher's supervisor (a program
    that scrubbed its environment). Guarded programs may not drive the
    daemon: it would let them write records in the operator's trail. An
    unreadable environment counts as inside (fail closed).
    """
    environ = _read(f"/proc/{pid}/environ")
    if environ is None or _ACTIVE_MARKER in environ.split(b"\0"):
        return True
    parent = _parent(pid)
    known = (parent, _start_ticks(parent))
    if known in _CLEAN_PARENTS:
        return False
    if any(guard_run_cmdline(cmdline) for cmdline in _ancestor_cmdlines(parent)):
        return True
    _remember(_CLEAN_PARENTS, known)
    return False


def placement_refusal(pid: int) -> str | None:
    """Say why the helper cannot place ``pid``, or None when it can.

    The helper lends its authority (it writes the operator's trail) only to
    a client whose place it can establish (issue 12 K11): one in the
    helper's own PID namespace (a sandboxed program, a container, anything
    the kernel shows as pid 0 is elsewhere), with a living parent other than
    PID 1 (an orphan has lost the ancestry that would give it away) and an
    ancestry that can be read up to PID 1. Such a client is not refused a
    run: it judges and records in-process, with its own powers only.
    """
    if pid <= 0:
        return "the client is outside the helper's PID namespace"
    theirs = _readlink(f"/proc/{pid}/ns/pid")
    if theirs is None or theirs != _own_pid_namespace():
        return "the client is in another PID namespace"
    current = _parent(pid)
    if current == 1:
        return "the client's parent is PID 1: its ancestry cannot be established"
    known = (current, _start_ticks(current))
    if known in _PLACED_PARENTS:
        return None
    for _ in range(_MAX_ANCESTORS):
        if current == 1:
            _remember(_PLACED_PARENTS, known)
            return None
        if current <= 0:
            break
        current = _parent(current)
    return "the client's ancestry cannot be read up to PID 1"


@functools.cache
def _own_pid_namespace() -> str | None:
    return _readlink("/proc/self/ns/pid")


# NOTE(speed): an agent's commands come from the same shell, one after the
# other; walking its ancestry costs ~0.4 ms. A parent found clean stays
# clean: a process is only ever reparented to one of its own ancestors, so
# no guard can appear above it later. Keyed by pid and start time (a reused
# pid is another process).
_CLEAN_PARENTS: set[tuple[int, bytes | None]] = set()
# Likewise a parent whose ancestry was read up to PID 1: while it lives (the
# same pid and start time) it keeps an ancestry, re-parented only upwards.
_PLACED_PARENTS: set[tuple[int, bytes | None]] = set()
_PARENTS_LIMIT = 1024


def _remember(
    parents: set[tuple[int, bytes | None]], known: tuple[int, bytes | None]
) -> None:
    if known[1] is None:  # only a parent we could identify
        return
    if len(parents) >= _PARENTS_LIMIT:
        parents.clear()
    parents.add(known)


def _start_ticks(pid: int) -> bytes | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text.rpartition(b")")[2].split()
    return fields[19] if len(fields) > 19 else None  # noqa: PLR2004 - proc(5) field 22


def _ancestor_cmdlines(first: int) -> Iterator[list[str]]:
    """Command lines of ``first`` and its ancestors, nearest first, up to init."""
    current = first
    for _ in range(_MAX_ANCESTORS):
        if current <= 1:
            return
        raw = _read(f"/proc/{current}/cmdline")
        if raw:
            yield [word.decode(errors="replace") for word in raw.split(b"\0") if word]
        current = _parent(current)


def _parent(pid: int) -> int:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return 0
    try:
        return int(text.rpartition(b")")[2].split()[1])
    except (IndexError, ValueError):
        return 0


class PeerView(NamedTuple):
    """A client process as the helper sees it."""

    differences: list[str]  # what differs from the helper's context, sorted
    umask: int | None  # None when the kernel does not say (before Linux 4.7)


def examine(pid: int) -> PeerView:
    """Compare ``pid``'s context with this process's; read its umask too.

    No differences means a child of this process would inherit what a child
    of ``pid`` would; an unreadable item counts as a difference.
    """
    status = _status(str(pid))
    theirs = _context(str(pid), status)
    ours = _own_context()
    differences = sorted(
        name
        for name in ours.keys() | theirs.keys()
        if theirs.get(name) is None or ours.get(name) != theirs.get(name)
    )
    umask = status.get(b"Umask") if status is not None else None
    return PeerView(differences, int(umask, 8) if umask is not None else None)


@functools.cache
def _own_context() -> dict[str, object]:
    # The helper never changes its own context after it starts.
    return _context("self", _status("self"))


def _context(pid: str, status: dict[bytes, bytes] | None) -> dict[str, object]:
    found: dict[str, object] = {}
    for field in _STATUS_FIELDS:
        found[field.decode()] = None if status is None else status.get(field, b"")
    for kind in _NAMESPACES:
        found[f"ns:{kind}"] = _readlink(f"/proc/{pid}/ns/{kind}")
    found["cgroup"] = _read(f"/proc/{pid}/cgroup")
    found["limits"] = _read(f"/proc/{pid}/limits")
    found["root"] = _identity(f"/proc/{pid}/root")
    found["sched"] = _stat_fields(pid)
    return found


def _status(pid: str) -> dict[bytes, bytes] | None:
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(b":")
        fields[name] = value.strip()
    return fields


def _stat_fields(pid: str) -> tuple[bytes, ...] | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text.rpartition(b")")[2].split()
    try:
        return tuple(fields[index] for index in _STAT_FIELDS)
    except IndexError:
        return None


def _read(path: str) -> bytes | None:
    # os.read, not open(): a dozen /proc files per command, and the buffered
    # file adds an fstat, an ioctl and a seek to each.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return ""  # a namespace kind this kernel does not have
    except OSError:
        return None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
