"""The exit statuses of chosen programs in a tree, from the kernel's process events.

``bash -c 'pytest -q | tail -1'`` exits with ``tail``'s status; pytest's own
is reaped by bash, so neither the supervisor nor the PID namespace's init
(which sees only orphans) ever learns it. The kernel's process events
connector (``NETLINK_CONNECTOR``, group ``CN_IDX_PROC``) multicasts every
fork (parent -> child), exec and exit (with the raw wait status) on the
machine. :class:`TreeWatch` follows the fork events from the process the
supervisor forked, reads the command line of each program the tree execs,
and keeps the wait status of those a predicate picks (test runners).

Needs CAP_NET_ADMIN in the initial user namespace and a supervisor in the
initial network and PID namespaces (the connector exists only there and
names pids as that namespace sees them). Where that does not hold,
:func:`listen` raises or the watch never sees the supervisor's own fork, and
:attr:`TreeWatch.unobserved` says why: the caller records that, never a guess.

NOTE(prototype): built after round 3's landing deadline; not wired into the
runner yet (see /work/wt/notes/outcomes.md for the plan).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Observed", "TreeWatch", "listen"]

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_MCAST_LISTEN = 1
_NLMSG_DONE = 3
_SO_RCVBUFFORCE = 33
_BUFFER = 4 << 20  # events of a busy machine between two drains
_FORK, _EXEC, _EXIT = 0x1, 0x2, 0x80000000
_NLMSG = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT = struct.Struct("=IIQ")
_EVENT_AT = _NLMSG.size + _CN_MSG.size
_DATA_AT = _EVENT_AT + _EVENT.size


def listen() -> socket.socket:
    """Open a non-blocking socket subscribed to the process events.

    Raises:
        OSError: no connector here (not Linux, another network namespace) or
            no permission (CAP_NET_ADMIN).
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
    try:
        sock.bind((0, _CN_IDX_PROC))
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        operation = struct.pack("=I", _MCAST_LISTEN)
        message = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(operation), 0)
        body = message + operation
        sock.send(_NLMSG.pack(_NLMSG.size + len(body), _NLMSG_DONE, 0, 0, 0) + body)
        sock.setblocking(False)  # noqa: FBT003 - socket API
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class Observed:
    """A picked program's end: its name (from the predicate) and wait status."""

    name: str
    pid: int
    argv: tuple[str, ...]
    wait_status: int

    @property
    def exit_code(self) -> int | None:
        """The exit code, or None when a signal ended it."""
        return (
            os.waitstatus_to_exitcode(self.wait_status) if self.signal is None else None
        )

    @property
    def signal(self) -> int | None:
        """The signal that ended it, else None."""
        return (
            os.WTERMSIG(self.wait_status) if os.WIFSIGNALED(self.wait_status) else None
        )


@dataclass
class TreeWatch:
    """Follow one tree in the event stream; keep picked programs' statuses.

    Attributes:
        parent: the supervisor's pid (the tree's root is its child).
        pick: the program's name when an argv is one to watch, else None.
    """

    parent: int
    pick: Callable[[Sequence[str]], str | None]
    root: int | None = None
    observed: list[Observed] = field(default_factory=list)
    lost: bool = False
    unread: int = 0
    _tree: set[int] = field(default_factory=set)
    _picked: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    _root_seen: bool = False

    @property
    def unobserved(self) -> str | None:
        """Why the statuses may be incomplete, or None when they are not."""
        if self.lost:
            return "process events were lost (the kernel's buffer overflowed)"
        if not self._root_seen:
            return "the process events name other pids (another PID namespace)"
        if self.unread:
            return f"{self.unread} program(s) ended before their command line was read"
        return None

    def drain(self, sock: socket.socket) -> None:
        """Read every queued event; call once the tree's root is known.

        Call it whenever the socket is readable while the tree runs: a
        program's command line is read when its exec event is handled, so
        one that has ended by then counts in :attr:`unread`.
        """
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.lost = True
                continue
            self.feed(data)

    def feed(self, data: bytes) -> None:
        """Apply the events in one netlink datagram."""
        offset = 0
        while offset + _DATA_AT <= len(data):
            length = _NLMSG.unpack_from(data, offset)[0]
            what = _EVENT.unpack_from(data, offset + _EVENT_AT)[0]
            fields = struct.unpack_from("=IIII", data, offset + _DATA_AT)
            self._event(what, fields)
            offset += max((length + 3) & ~3, _NLMSG.size)

    def _event(self, what: int, fields: tuple[int, ...]) -> None:
        if what == _FORK:
            self._fork(parent=fields[1], child=fields[3])
        elif what == _EXEC and fields[0] == fields[1] and fields[1] in self._tree:
            self._exec(fields[1])
        elif what == _EXIT and fields[0] == fields[1] and fields[1] in self._tree:
            self._exit(fields[1], fields[2])

    def _fork(self, parent: int, child: int) -> None:
        if parent == child:  # a thread
            return
        if parent == self.parent and child == self.root:
            self._root_seen = True
            self._tree.add(child)
        elif parent in self._tree:
            self._tree.add(child)

    def _exec(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:  # noqa: PTH123 - hot
                raw = handle.read()
        except OSError:  # already gone before this drain: cannot tell what it was
            self.unread += 1
            return
        argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])
        name = self.pick(argv) if argv else None
        if name is None:
            self._picked.pop(pid, None)
        else:
            self._picked[pid] = (name, argv)

    def _exit(self, pid: int, wait_status: int) -> None:
        self._tree.discard(pid)
        picked = self._picked.pop(pid, None)
        if picked is not None:
            self.observed.append(Observed(picked[0], pid, picked[1], wait_status))
