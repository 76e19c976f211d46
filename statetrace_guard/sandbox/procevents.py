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

The runner opens the socket before it forks, only for commands with a test
part (:attr:`statetrace_guard.runner.RunSpec.watch_tests`), and drains it in
its wait loop; ``command.finished`` carries :meth:`TreeWatch.as_record`.
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
_NONE, _FORK, _EXEC, _EXIT = 0x0, 0x1, 0x2, 0x80000000
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
        _check_ack(sock)
    except OSError:
        sock.close()
        raise
    return sock


def _check_ack(sock: socket.socket) -> None:
    """Read up to the kernel's answer to the subscription; raise if it refused.

    The answer is sent while ``send`` runs, so it is queued by now (behind
    events of other processes, which predate the tree and are dropped).
    Where no answer comes (older kernels answer only when asked), the
    watch's own check, that it saw the tree's first fork, still holds.
    """
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _DATA_AT + 4 <= len(data):
            length = _NLMSG.unpack_from(data, offset)[0]
            if _EVENT.unpack_from(data, offset + _EVENT_AT)[0] == _NONE:
                error = struct.unpack_from("=I", data, offset + _DATA_AT)[0]
                if error:
                    raise OSError(error, os.strerror(error))
                return
            offset += max((length + 3) & ~3, _NLMSG.size)


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
    """Follow one tree in the event stream; keep the picked programs' statuses.

    Only the outermost picked programs count: ``npm test`` running jest is one
    test run (npm's status is jest's), and a test suite that runs pytest in a
    subprocess (to test a plugin) has the outer pytest's status. Programs
    below a picked one are not even looked at.

    Attributes:
        parent: the supervisor's pid (the tree's root is its child).
        pick: the program's name when an argv is one to watch, else None.
        root: the supervisor's child, once forked.
        observed: the picked programs that ended, in order.
        lost: the kernel dropped events (its buffer overflowed).
        unread: programs outside any picked one whose command line could not
            be read (they had ended before their exec event was handled).
    """

    parent: int
    pick: Callable[[Sequence[str]], str | None]
    root: int | None = None
    observed: list[Observed] = field(default_factory=list)
    lost: bool = False
    unread: int = 0
    # Tree pids -> whether the process is a picked program or runs below one.
    _tree: dict[int, bool] = field(default_factory=dict)
    _picked: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    _root_seen: bool = False

    @property
    def unobserved(self) -> str | None:
        """Why no status can be trusted at all, or None.

        ``unread`` programs are not in it: they leave the statuses seen
        true, only perhaps incomplete (the reader weighs that).
        """
        if self.lost:
            return "process events were lost (the kernel's buffer overflowed)"
        if not self._root_seen:
            return "the process events never named the program's tree"
        return None

    def as_record(self) -> dict[str, object]:
        """The ``test_programs`` field of ``command.finished``."""
        return {
            "runs": [
                {"program": o.name, "exit_code": o.exit_code, "signal": o.signal}
                for o in self.observed
            ],
            "unread": self.unread,
            "unobserved": self.unobserved,
        }

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
            self._tree[child] = False
        elif parent in self._tree:
            self._tree[child] = self._tree[parent]

    def _exec(self, pid: int) -> None:
        if self._tree[pid]:  # a picked program, or below one
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:  # noqa: PTH123 - hot
                raw = handle.read()
        except OSError:
            raw = b""
        if not raw:  # gone (a zombie's command line is empty): cannot tell
            self.unread += 1
            return
        parts = raw.removesuffix(b"\0").split(b"\0")
        argv = tuple(part.decode(errors="replace") for part in parts)
        name = self.pick(argv)
        if name is not None:
            self._picked[pid] = (name, argv)
            self._tree[pid] = True

    def _exit(self, pid: int, wait_status: int) -> None:
        del self._tree[pid]
        picked = self._picked.pop(pid, None)
        if picked is not None:
            self.observed.append(Observed(picked[0], pid, picked[1], wait_status))
