"""The helper's launcher: a small process that starts and supervises programs.

Forking the helper itself per command would be slow twice over: it holds
the classifier, the policy and the trail (tens of MB to copy the page tables
of), and after each fork both processes pay a copy-on-write fault for every
page Python's reference counting touches. So the helper starts this process
once, before it loads anything heavy; it imports only the runner and the
sandbox, and forks a *supervisor* per command, which is cheap.

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
from dataclasses import replace
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
from statetrace_guard.runner import run

# NOTE(speed): loaded here once, not by every supervisor: the runner imports
# it lazily (other platforms never need it), and a supervisor is a fork of
# this process, so an import after the fork is paid per command (~2 ms).
from statetrace_guard.sandbox import pidinit  # noqa: F401
from statetrace_guard.sandbox.mounts import (
    make_mount_namespace,
    reserve_mount_namespace,
)
from statetrace_guard.sandbox.netns import (
    make_network_namespace,
    reserve_network_namespace,
)

if TYPE_CHECKING:
    from statetrace_guard.online.plumbing import ProxyProcess
    from statetrace_guard.sandbox.base import SandboxBackend, SandboxPlan

__all__ = ["MAX_PACKET", "ClientControl", "main", "recv_packet", "send_packet"]

# A seqpacket message must fit the socket's send buffer (net.core.wmem_default,
# 208 KiB unless tuned): room for any ordinary environment. A launch that does
# not fit is left to the client (the helper checks the size before sending).
MAX_PACKET = 200_000
# The client's connection and up to 250 of its descriptors (SCM_MAX_FD 253).
_MAX_FDS = 251
_DELIVERED = 0  # a supervisor's exit status: its outcome reached someone
CLIENT_LOST = "the guard client ended while the program ran; its tree was ended"
NOT_STARTED = "the guard client ended before the program started; nothing ran"


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

    def serve(self) -> None:
        """Until the helper goes away; running supervisors carry on."""
        while True:
            self._reap()
            ready, _, _ = select.select([self.channel], [], [], 0.5)
            if not ready:
                continue
            try:
                message, fds = recv_packet(self.channel)
            except (ProtocolError, OSError):
                return  # the helper is gone
            self._launch(message, fds)

    def _launch(self, message: dict[str, Any], fds: list[int]) -> None:
        try:
            plan = plan_from_wire(message["plan"])
            backend = backend_from_wire(message["plan"])
            backend.keep_prepared(plan)  # a ruleset for every later supervisor
            network = self._take_network(plan)
            mounts = self._take_mounts(plan)
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - reported, never fatal here
            # No supervisor exists for it: the client's connection is closed
            # here and the helper may tell the client to run it itself.
            _close_all(fds)
            self._report("unlaunched", message.get("id"), f"cannot start: {exc}")
            return
        if pid == 0:
            status = 1
            try:
                if network is not None:
                    reserve_network_namespace(network)
                if mounts is not None:
                    reserve_mount_namespace(mounts)
                status = _supervise(self.channel, message, fds, plan, backend)
            finally:
                os._exit(status)
        _close_all([*fds, *(fd for fd in (network, mounts) if fd is not None)])
        self.running[pid] = message["id"]
        if network is not None or self.spare_network is None:
            self._make_spare_network(plan)
        if mounts is not None or self.spare_mounts is None:
            self._make_spare_mounts(plan)

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
            command = self.running.pop(pid, None)
            if command is not None and os.waitstatus_to_exitcode(status) != _DELIVERED:
                self._report("lost", command, "the supervisor ended before the program")

    def _report(self, op: str, command: object, error: str) -> None:
        with contextlib.suppress(OSError):
            send_packet(self.channel, {"op": op, "id": command, "error": error})


def _supervise(
    channel: socket.socket,
    message: dict[str, Any],
    fds: list[int],
    plan: SandboxPlan,
    backend: SandboxBackend,
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
    try:
        outcome = run(spec)
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
