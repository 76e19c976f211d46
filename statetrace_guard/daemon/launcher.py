"""The helper's launcher: a small process that starts and supervises programs.

Forking the helper itself per command would be slow twice over: it holds
the classifier, the policy and the trail (tens of MB to copy the page tables
of), and after each fork both processes pay a copy-on-write fault for every
page Python's reference counting touches. So the helper starts this process
once, before it loads anything heavy; it imports only the runner and the
sandbox, and forks a *supervisor* per command, which is cheap. Cheaper still
ahead of time: once idle after a launch, it forks the next command's
supervisor, which waits on a pair of its own for the launch (message and
descriptors); only the first command, or one arriving before that, waits
for a fork.

Messages travel over one ``SOCK_SEQPACKET`` pair (each message arrives whole,
so supervisors may write concurrently):

* helper -> launcher: ``launch`` with the run parameters, the plan, and the
  client's connection as a descriptor.
* supervisor -> helper: ``forked`` (its pid, first thing: the helper watches
  it with a pidfd), then ``outcome`` (the program's figures, for
  ``command.finished``, or ``not_run``); launcher -> helper: ``unlaunched``
  when no supervisor could be started, ``lost`` when one ended without
  delivering.

The program starts only on the client's word. A supervisor sends the client
``running`` and waits for ``go``, which carries the client's own descriptors
(placed in the program at their numbers): they go straight from the client
to the supervisor, so a helper that is stopped or killed never holds an
agent's pipes open. A client that gave up (its deadline, a signal) closes
its connection instead, and the supervisor runs nothing.
So the client alone decides whether a command runs, and never two paths run
it. A supervisor then relays the client's signals to the program and ends
its tree when the client hangs up (recorded as the client lost). It sends
the outcome to the client first, then to the helper: if the helper is gone
or stopped, the client records it itself (a finish names its start, so it
lands once).

Run as ``python -m statetrace_guard.daemon.launcher FD`` by the helper.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from statetrace_guard.daemon.protocol import (
    ProtocolError,
    decode,
    recv_message,
    recv_message_with_fds,
    recv_with_fds,
    send_message,
)
from statetrace_guard.daemon.wire import (
    backend_from_wire,
    plan_from_wire,
    run_spec_from_wire,
)
from statetrace_guard.runner import InitAhead, RunSpec, init_ahead, run

# NOTE(speed): loaded here once, not by every supervisor: the runner imports
# it lazily (other platforms never need it), and a supervisor is a fork of
# this process, so an import after the fork is paid per command (~2 ms).
from statetrace_guard.sandbox import pidinit  # noqa: F401
from statetrace_guard.sandbox.capabilities import last_cap
from statetrace_guard.sandbox.mounts import (
    make_mount_namespace,
    reserve_mount_namespace,
    take_reserved_mount_namespace,
)
from statetrace_guard.sandbox.netns import (
    make_network_namespace,
    reserve_network_namespace,
    take_reserved_network_namespace,
)

if TYPE_CHECKING:
    from statetrace_guard.online.plumbing import ProxyProcess
    from statetrace_guard.sandbox.base import ChildSetup, SandboxBackend, SandboxPlan

__all__ = [
    "MAX_PACKET",
    "SPARE_NAME",
    "ClientControl",
    "main",
    "recv_packet",
    "send_packet",
]

# A seqpacket message must fit the socket's send buffer (net.core.wmem_default,
# 208 KiB unless tuned): room for any ordinary environment. A launch that does
# not fit is left to the client (the helper checks the size before sending).
MAX_PACKET = 200_000
# The client's connection and up to 250 of its descriptors (SCM_MAX_FD 253).
_MAX_FDS = 251
_DELIVERED = 0  # a supervisor's exit status: its outcome reached someone
CLIENT_LOST = "the guard client ended while the program ran; its tree was ended"
NOT_STARTED = "the guard client ended before the program started; nothing ran"
# The name (``comm``) of a supervisor forked ahead while it waits for its
# launch: no program of it exists yet (ps, tests looking for leftovers).
SPARE_NAME = b"guard-spare"
# The next supervisor is forked (and its namespaces made) once the last
# launched command has ended, or this long after its launch at the latest:
# done while a command's chain starts, that work (3 ms, mostly making the
# namespaces) slowed the chain on two cores; after the command it falls in
# the time the agent takes to send the next one.
_PREPARE_AFTER_S = 0.05


def send_packet(
    sock: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()
) -> None:
    """Send one whole message (marshal), with ``fds`` attached.

    Raises:
        ProtocolError: the message is larger than one packet may be.
        OSError: the other end is gone.
    """
    data = marshal.dumps(message)
    if len(data) > MAX_PACKET:
        raise ProtocolError(f"message of {len(data)} bytes is over {MAX_PACKET}")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def recv_packet(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Receive one whole message and its descriptors (close-on-exec).

    Raises:
        ProtocolError: the peer closed, or sent something that is not ours.
    """
    data, fds, flags = recv_with_fds(sock, MAX_PACKET, _MAX_FDS)
    try:
        if not data:
            raise ProtocolError("connection closed")  # noqa: TRY301 - fds close below
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError("message truncated")  # noqa: TRY301
        return decode(data), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


_RELAYED = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class ClientControl:
    """The client's connection as the runner's control channel."""

    def __init__(self, conn: socket.socket) -> None:
        """Read relayed signals from ``conn``."""
        self._conn = conn
        self.lost = False  # the client hung up while the program ran

    def fileno(self) -> int:
        """The connection's descriptor."""
        return self._conn.fileno()

    def read(self) -> int | None:
        """The signal the client relays, or None for anything else.

        Raises:
            EOFError: the client is gone (killed, or its agent gave up).
        """
        try:
            message = recv_message(self._conn)
        except (ProtocolError, OSError) as exc:
            self.lost = True
            raise EOFError from exc
        signum = message.get("signum")
        if message.get("op") == "signal" and signum in _RELAYED:
            return int(signum)
        return None


class Launcher:
    """Forks a supervisor per ``launch``; reports supervisors that vanish."""

    def __init__(self, channel: socket.socket) -> None:
        """Serve the helper at the other end of ``channel``."""
        self.channel = channel
        self.running: dict[int, int] = {}  # supervisor pid -> command id
        self.spare_network: int | None = None  # the next program's netns
        self.spare_mounts: int | None = None  # and its mount namespace
        self.waiting: _Waiting | None = None  # the next command's supervisor
        # What the last launch ran with: the next supervisor is forked for it
        # once that command has ended (not while its chain starts).
        self.pending: _Pending | None = None

    def serve(self) -> None:
        """Until the helper goes away; running supervisors carry on."""
        while True:
            self._reap()
            watch, wait = [self.channel.fileno()], 0.5
            if self.pending is not None:
                watch.extend(self.pending.ended)
                wait = max(0.0, self.pending.deadline - time.monotonic())
            ready, _, _ = select.select(watch, [], [], wait)
            if self.channel.fileno() not in ready:
                if self.pending is not None:
                    self._prepare_pending()
                continue
            try:
                message, fds = recv_packet(self.channel)
            except (ProtocolError, OSError):
                return  # the helper is gone
            if message.get("op") == "expect":
                self._pass_expect(message, fds)
                continue
            self._launch(message, fds)

    def _pass_expect(self, message: dict[str, Any], fds: list[int]) -> None:
        """The plan of the launch to come, for the waiting supervisor's init."""
        _close_all(fds)  # none come with it
        if self.waiting is None:
            return  # the launch will fork its own supervisor
        with contextlib.suppress(OSError, ProtocolError):
            send_packet(self.waiting.sock, message)

    def _prepare_pending(self) -> None:
        """The last command ended (or took long): fork the next supervisor."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        pending.close()
        with contextlib.suppress(Exception):  # the next launch forks its own
            self._prepare_next(pending.plan, pending.backend)

    def _launch(self, message: dict[str, Any], fds: list[int]) -> None:
        """Give the command to the supervisor forked ahead, else fork one now."""
        # The waiting supervisor first: it decodes the launch itself.
        pid = self._hand_over(message, fds)
        try:
            plan = plan_from_wire(message["plan"])
            backend = backend_from_wire(message["plan"])
            if pid is None:
                pid = self._fork_supervisor(message, fds, plan, backend)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal here
            if pid is not None:  # it has the launch: its own account follows
                self.running[pid] = message["id"]
                return
            # No supervisor exists for it: the client's connection is closed
            # here and the helper may tell the client to run it itself.
            _close_all(fds)
            self._report("unlaunched", message.get("id"), f"cannot start: {exc}")
            return
        self.running[pid] = message["id"]
        if self.pending is not None:
            self.pending.close()
        self.pending = _Pending.after(pid, plan, backend)

    def _hand_over(self, message: dict[str, Any], fds: list[int]) -> int | None:
        """Send the launch to the waiting supervisor: its pid, or None (fork one)."""
        waiting, self.waiting = self.waiting, None
        if waiting is None:
            return None
        try:
            send_packet(waiting.sock, message, tuple(fds))
        except (ProtocolError, OSError):
            return None  # it is gone (or the launch is too large): fork anew
        finally:
            waiting.sock.close()  # a waiting one that was not sent anything exits
        _close_all(fds)  # the agent sees EOF once the supervisor is done with them
        return waiting.pid

    def _fork_supervisor(
        self,
        message: dict[str, Any],
        fds: list[int],
        plan: SandboxPlan,
        backend: SandboxBackend,
    ) -> int:
        """Fork the command's supervisor now (the first command, or none waiting)."""
        backend.keep_prepared(plan)  # a ruleset for every later supervisor
        network = self._take_network(plan)
        mounts = self._take_mounts(plan)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                _reserve(network, mounts)
                status = _supervise(self.channel, message, fds, plan, backend)
            finally:
                os._exit(status)
        _close_all([*fds, *(fd for fd in (network, mounts) if fd is not None)])
        return pid

    def _prepare_next(self, plan: SandboxPlan, backend: SandboxBackend) -> None:
        """Once idle after a launch: the next command's supervisor, forked ahead.

        NOTE(speed): forking the launcher and getting the new process
        scheduled took 1-1.5 ms of every command; a supervisor that already
        waits takes the launch in a message. It is forked with what this
        plan needs ready (ruleset, seccomp program, namespaces made ahead);
        a command with another plan builds its own in the supervisor.
        """
        if self.waiting is not None:
            return
        backend.keep_prepared(plan)
        last_cap()  # read once here, not by every init
        self._make_spare_network(plan)
        self._make_spare_mounts(plan)
        network = self._take_network(plan)
        mounts = self._take_mounts(plan)
        spares = [fd for fd in (network, mounts) if fd is not None]
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            _close_all(spares)
            return
        try:
            pid = os.fork()
        except OSError:
            _close_all([*spares, ours.detach(), theirs.detach()])
            return
        if pid == 0:
            status = 1
            try:
                ours.close()
                _reserve(network, mounts)
                ahead = _Expected(_init_wanted(plan), plan, backend)
                status = _await_launch(self.channel, theirs, ahead)
            finally:
                os._exit(status)
        theirs.close()
        _close_all(spares)
        self.waiting = _Waiting(pid, ours)

    def _take_network(self, plan: SandboxPlan) -> int | None:
        """The spare namespace, when this plan wants a private network."""
        if plan.enforcement.get("network") not in {"netns", "proxy"}:
            return None
        if "session_network" in plan.details:  # joins its session's (below L3)
            return None
        if not _as_root(plan):
            return None
        network, self.spare_network = self.spare_network, None
        return network

    def _take_mounts(self, plan: SandboxPlan) -> int | None:
        """The spare mount namespace, when this plan builds a mount view."""
        if plan.details.get("protect") != "mount" or not _as_root(plan):
            return None
        mounts, self.spare_mounts = self.spare_mounts, None
        return mounts

    def _make_spare_mounts(self, plan: SandboxPlan) -> None:
        """Prepare the next program's mount namespace while this one runs."""
        if self.spare_mounts is not None or not _as_root(plan):
            return
        with contextlib.suppress(OSError):
            self.spare_mounts = make_mount_namespace()

    def _make_spare_network(self, plan: SandboxPlan) -> None:
        """Prepare the next program's namespace while this one runs."""
        if self.spare_network is not None or not _as_root(plan):
            return
        with contextlib.suppress(OSError):
            self.spare_network = make_network_namespace()

    def _reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.running.clear()
                return
            if pid == 0:
                return
            if self.waiting is not None and pid == self.waiting.pid:
                self.waiting.sock.close()  # died waiting: the next launch forks anew
                self.waiting = None
            command = self.running.pop(pid, None)
            if command is not None and os.waitstatus_to_exitcode(status) != _DELIVERED:
                self._report("lost", command, "the supervisor ended before the program")

    def _report(self, op: str, command: object, error: str) -> None:
        with contextlib.suppress(OSError):
            send_packet(self.channel, {"op": op, "id": command, "error": error})


@dataclass(frozen=True)
class _Pending:
    """The plan to fork the next supervisor for, and when.

    ``ended`` holds a pidfd of the last launch's supervisor (readable once
    it exits), empty where there are no pidfds: then the deadline alone.
    """

    plan: SandboxPlan
    backend: SandboxBackend
    deadline: float
    ended: tuple[int, ...]

    @classmethod
    def after(cls, pid: int, plan: SandboxPlan, backend: SandboxBackend) -> _Pending:
        """Pending on the end of supervisor ``pid``."""
        try:
            ended: tuple[int, ...] = (os.pidfd_open(pid),)
        except (OSError, AttributeError):
            ended = ()
        return cls(plan, backend, time.monotonic() + _PREPARE_AFTER_S, ended)

    def close(self) -> None:
        """Close the pidfd."""
        _close_all(list(self.ended))


@dataclass(frozen=True)
class _Waiting:
    """A supervisor forked ahead, waiting on ``sock`` for its launch."""

    pid: int
    sock: socket.socket


def _reserve(network: int | None, mounts: int | None) -> None:
    """In a supervisor: the namespaces made ahead for its one program."""
    if network is not None:
        reserve_network_namespace(network)
    if mounts is not None:
        reserve_mount_namespace(mounts)


def _rename(name: bytes) -> bytes | None:
    """Set this process's name (``comm``); the name it had, None if unchanged."""
    try:
        fd = os.open("/proc/self/comm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        old = os.read(fd, 64).rstrip(b"\n")
        os.write(fd, name)  # the kernel ignores the offset here (no pwrite)
    except OSError:
        return None
    finally:
        os.close(fd)
    return old


@dataclass(frozen=True)
class _Expected:
    """What the next command is expected to need (the last one's plan)."""

    init: tuple[bool, bool] | None  # see _init_wanted
    plan: SandboxPlan
    backend: SandboxBackend


def _await_launch(
    channel: socket.socket, sock: socket.socket, expected: _Expected
) -> int:
    """In a supervisor forked ahead: wait for the launch, then supervise it.

    When the expected plan wants one, the program's init is forked ahead
    too (see ``_Ahead``). The launcher closing its end without a launch (it
    exits, or the supervisor was not needed) ends this process: nothing
    ran, nothing to report (init, told nothing, exits with it).
    """
    name = _rename(SPARE_NAME)
    ahead = None if expected.init is None else _Ahead.fork(expected, name, sock)
    expected_id = None
    try:
        message, fds = recv_packet(sock)
        while message.get("op") == "expect":
            # The plan before the launch: init builds the view now. A second
            # one (the first command never launched) finds init built for
            # another command: it is discarded, the launch forks its own.
            if expected_id is not None and ahead is not None:
                ahead.handle.discard()
                ahead = None
            expected_id = message.get("id")
            if ahead is not None and not ahead.send_launch(message):
                ahead = None
            message, fds = recv_packet(sock)
    except (ProtocolError, OSError):
        return _DELIVERED
    sock.close()
    if ahead is not None and expected_id not in {None, message.get("id")}:
        ahead.handle.discard()  # built for a command that never launched
        ahead = None
    # Init first: it builds the program's view while this process answers.
    if ahead is not None and not ahead.send_launch(message):
        ahead = None
    if name is not None:
        _rename(name)
    plan = plan_from_wire(message["plan"])
    backend = backend_from_wire(message["plan"])
    if ahead is not None and _init_wanted(plan) != ahead.kind:
        ahead.handle.discard()  # it refuses the plan too, and exits
        ahead = None
    return _supervise(channel, message, fds, plan, backend, ahead)


def _init_wanted(plan: SandboxPlan) -> tuple[bool, bool] | None:
    """Whether an init forked ahead can serve ``plan``, and how.

    (as root, empties its bounding set ahead); None when it cannot: no PID
    namespace, or the L3 proxy (whose channel the supervisor makes for the
    init it forks). Only as root: the user-namespace holder's path is left
    as it was (NOTE(speed): not measured or tested ahead).
    """
    if "pid" not in plan.seal.namespaces or plan.enforcement.get("network") == "proxy":
        return None
    if not _as_root(plan):
        return None
    return True, plan.seal.capabilities == "none"


@dataclass
class _Ahead:
    """The program's init, forked by a waiting supervisor before its launch.

    NOTE(speed): forking a Python process and scheduling it took 1-2 ms of
    every command's path. Forked while the supervisor waits, init gets the
    launch as soon as the supervisor does (``send_launch``), builds the
    program's sandbox and enters its namespaces and mounts while the
    supervisor waits for the client's go, and gets the client's descriptors
    with the go (``give``, sent when ``run`` is ready).
    """

    kind: tuple[bool, bool]  # (as root, bounding set emptied ahead)
    handle: InitAhead
    sock: socket.socket  # the supervisor's end; init reads its command there

    @classmethod
    def fork(
        cls, expected: _Expected, name: bytes | None, spare: socket.socket
    ) -> _Ahead | None:
        """Fork it now; None when that fails (the launch forks its own)."""
        kind = expected.init
        if kind is None:
            return None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        side = _InitSide(expected, name, theirs, (ours, spare))
        try:
            handle = init_ahead(
                as_root=kind[0],
                bounding=kind[1],
                launch=side.launch,
                command=side.command,
            )
        except OSError:
            ours.close()
            theirs.close()
            return None
        theirs.close()
        handle.cancel = ours.close
        _leave_reservations_to_init()
        return cls(kind, handle, ours)

    def send_launch(self, message: dict[str, Any]) -> bool:
        """Give init the launch now; False when it cannot take it (discarded)."""
        try:
            send_packet(self.sock, message)
        except (OSError, ProtocolError):
            self.handle.discard()
            return False
        return True

    def give(self, fds: list[int]) -> None:
        """Arrange for init to get the go and the client's descriptors in ``run``."""

        def release() -> None:
            try:
                send_packet(self.sock, {"op": "go"}, tuple(fds))
            finally:
                self.sock.close()

        self.handle.release = release


class _InitSide:
    """What an init forked ahead reads from its supervisor, in init.

    First the plan: an "expect" (the helper's ``_expect``, before the
    start is written) or the launch itself. Then, with an "expect", the
    launch, which must be the one announced; then the go with the client's
    descriptors. Anything else and init exits, having run nothing.
    """

    def __init__(
        self,
        expected: _Expected,
        name: bytes | None,
        sock: socket.socket,
        others: tuple[socket.socket, ...],
    ) -> None:
        """Keep init's end of the supervisor's socket; ``others`` close in init."""
        self._expected, self._name, self._sock = expected, name, sock
        self._others = others
        self._first: dict[str, Any] = {}
        self._launch: dict[str, Any] | None = None
        self._plan: SandboxPlan | None = None
        self._backend: SandboxBackend | None = None

    def launch(self) -> tuple[SandboxPlan, ChildSetup] | None:
        """The program's plan and its setup, built without the outputs."""
        for other in self._others:
            other.close()  # the launcher's launch is the supervisor's to read
        prepared = _prepare_rules(self._expected)
        try:
            message, _ = recv_packet(self._sock)
        except (ProtocolError, OSError):
            return None
        self._first = message
        self._plan = plan_from_wire(message["plan"])
        self._backend = backend_from_wire(message["plan"])
        setup = self._backend.child_setup(self._plan, (), prepared)
        if message.get("op") != "expect":
            self._take(message)
        return self._plan, setup

    def _take(self, launch: dict[str, Any]) -> None:
        """The launch is init's: it stops being a spare (and says so in ps)."""
        self._launch = launch
        if self._name is not None:
            _rename(self._name)

    def command(self) -> RunSpec | None:
        """The program's spec, once the client said go (None: nothing runs)."""
        try:
            message, fds = recv_packet(self._sock)
            if self._launch is None and message.get("op") == "launch":
                if not _launch_expected(message, self._first):
                    return None  # not what init was built for: it exits
                self._take(message)
                message, fds = recv_packet(self._sock)
        except (ProtocolError, OSError):
            return None
        self._sock.close()
        plan, backend, launch = self._plan, self._backend, self._launch
        if plan is None or backend is None or launch is None:
            return None
        if message.get("op") != "go":
            return None
        return _spec_in_init(launch, plan, backend, fds)


_HELD_NETWORK: list[int] = []


def _leave_reservations_to_init() -> None:
    """The namespaces prepared for this supervisor's program are init's now.

    The fork copied the reservation and init builds its view in them. Should
    init be discarded after that (a launch other than the one it was built
    for), a fresh init must make its own: the prepared mount namespace holds
    the discarded view (another command's private directory on top).
    """
    take_reserved_mount_namespace()  # held open here until this process exits
    network = take_reserved_network_namespace()
    if network is not None:
        # Held too: a namespace's teardown waits for its last holder, this
        # process, which exits after the outcome was reported.
        _HELD_NETWORK.append(network)


def _launch_expected(launch: dict[str, Any], expect: dict[str, Any]) -> bool:
    """The launch is the one its "expect" announced, with the same plan."""
    return launch.get("id") == expect.get("id") and launch.get("plan") == expect.get(
        "plan"
    )


def _prepare_rules(expected: _Expected) -> object | None:
    """In an init forked ahead: the expected plan's devices and ruleset, or None."""
    try:
        return expected.backend.prepare_rules(expected.plan)
    except Exception:  # noqa: BLE001 - built again once the command comes
        return None


def _spec_in_init(
    message: dict[str, Any],
    plan: SandboxPlan,
    backend: SandboxBackend,
    fds: list[int],
) -> RunSpec:
    """In an init forked ahead: the program's spec from the launch.

    As the supervisor builds it, with the descriptors at the numbers the
    client gave.
    """
    if message.get("umask") is not None:
        os.umask(message["umask"])
    return run_spec_from_wire(
        message["spec"], plan, backend, fds=dict(zip(message["fds"], fds, strict=True))
    )


def _supervise(
    channel: socket.socket,
    message: dict[str, Any],
    fds: list[int],
    plan: SandboxPlan,
    backend: SandboxBackend,
    ahead: _Ahead | None = None,
) -> int:
    """In the supervisor: wait for the client's go, run, deliver; exit status."""
    conn = socket.socket(fileno=fds[0])
    _close_all(fds[1:])  # nothing else is sent with a launch
    command = message["id"]
    with contextlib.suppress(OSError):
        send_packet(channel, {"op": "forked", "id": command, "pid": os.getpid()})
    given = _client_says_go(conn, message)
    if given is None:
        not_run = {"exit_status": None, "not_run": True, "error": NOT_STARTED}
        with contextlib.suppress(OSError):
            send_packet(channel, {"op": "outcome", "id": command, "outcome": not_run})
        return _DELIVERED
    if len(given) != len(message["fds"]):
        _close_all(given)
        refused = {
            "exit_status": 125,
            "not_run": True,
            "error": "the client's descriptors did not arrive whole; nothing ran",
        }
        return _deliver(channel, conn, command, refused)
    fds = [fds[0], *given]
    program_fds = dict(zip(message["fds"], given, strict=True))
    if message.get("umask") is not None:
        os.umask(message["umask"])
    control = ClientControl(conn)
    spec = run_spec_from_wire(
        message["spec"], plan, backend, control=control, fds=program_fds
    )
    proxy = _start_proxy(plan)
    if proxy is not None:
        spec = replace(spec, helpers=(proxy.pid,))
    handle = None
    if ahead is not None:
        ahead.give(given)
        handle = ahead.handle
    try:
        outcome = run(spec, handle)
    finally:
        egress_error = proxy.stop() if proxy is not None else None
    _close_all(fds[1:])  # the agent sees EOF on its pipes once the program is done
    record = outcome.as_record()
    if egress_error is not None:
        record["egress_error"] = egress_error
    if control.lost:
        record["error"] = CLIENT_LOST
        record["client_lost"] = True
    return _deliver(channel, conn, command, record)


def _client_says_go(conn: socket.socket, message: dict[str, Any]) -> list[int] | None:
    """Tell the client the program is ready; its descriptors once it says ``go``.

    None when it does not (it hung up: nothing may run).
    """
    try:
        send_message(conn, {"op": "running", "warnings": message.get("warnings", [])})
        answer, given = recv_message_with_fds(conn, _MAX_FDS)
    except (OSError, ProtocolError):
        return None
    if answer.get("op") != "go":
        _close_all(given)
        return None
    return given


def _deliver(
    channel: socket.socket, conn: socket.socket, command: object, record: dict[str, Any]
) -> int:
    """The outcome to the client first, then to the helper (who records it).

    The client holds it from then on: a helper killed or stopped before it
    records the finish leaves the client able to record it instead.
    """
    reached = False
    with contextlib.suppress(OSError, ProtocolError):
        send_message(conn, {"op": "outcome", "outcome": record})
        reached = True
    try:
        send_packet(channel, {"op": "outcome", "id": command, "outcome": record})
    except OSError:
        return _DELIVERED if reached else 1
    return _DELIVERED


def _start_proxy(plan: SandboxPlan) -> ProxyProcess | None:
    """The L3 egress proxy the plan asks for (its module loaded only then).

    Raises:
        OSError: it cannot be started; the supervisor reports the command lost.
    """
    if plan.enforcement.get("network") != "proxy":
        return None
    from statetrace_guard.online.plumbing import start_for  # noqa: PLC0415

    return start_for(plan)


def _as_root(plan: SandboxPlan) -> bool:
    return plan.details.get("namespaces") == "root"


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def main(argv: list[str] | None = None) -> None:
    """``python -m statetrace_guard.daemon.launcher FD``."""
    args = sys.argv[1:] if argv is None else argv
    channel = socket.socket(fileno=int(args[0]))
    # Inherited from the helper on purpose; no program may inherit it in
    # turn (it could report outcomes for other commands).
    channel.set_inheritable(False)
    Launcher(channel).serve()


if __name__ == "__main__":
    main()
