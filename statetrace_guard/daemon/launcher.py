"""The helper's launcher: a small process that starts and supervises programs.

Forking the helper itself per command would be slow twice over: it holds
the classifier, the policy and the trail (tens of MB to copy the page tables
of), and after each fork both processes pay a copy-on-write fault for every
page Python's reference counting touches. So the helper starts this process
once, before it loads anything heavy; it imports only the runner and the
sandbox, and forks a *supervisor* per command, which is cheap.

Messages travel over one ``SOCK_SEQPACKET`` pair (each message arrives whole,
so supervisors may write concurrently):

* helper -> launcher: ``launch`` with the run parameters, the plan, and as
  descriptors the client's connection followed by the client's own
  descriptors (placed in the program at their numbers).
* supervisor -> helper: ``outcome`` (the program's figures, for
  ``command.finished``); launcher -> helper: ``lost`` when a supervisor ended
  without one.

A supervisor relays the client's signals to the program and ends its tree
when the client hangs up. If the helper is gone when the program ends, the
supervisor sends the outcome to the client, which records it itself.

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
            self._report_lost(message.get("id"), f"cannot start: {exc}")
            _close_all(fds)
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
                self._report_lost(command, "the supervisor ended before the program")

    def _report_lost(self, command: object, error: str) -> None:
        with contextlib.suppress(OSError):
            send_packet(self.channel, {"op": "lost", "id": command, "error": error})


def _supervise(
    channel: socket.socket,
    message: dict[str, Any],
    fds: list[int],
    plan: SandboxPlan,
    backend: SandboxBackend,
) -> int:
    """In the supervisor: run the program; deliver the outcome; exit status."""
    conn = socket.socket(fileno=fds[0])
    program_fds = dict(zip(message["fds"], fds[1:], strict=True))
    if message.get("umask") is not None:
        os.umask(message["umask"])
    spec = run_spec_from_wire(
        message["spec"], plan, backend, control=ClientControl(conn), fds=program_fds
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
    try:
        send_packet(channel, {"op": "outcome", "id": message["id"], "outcome": record})
    except OSError:
        # The helper is gone: the client writes command.finished itself.
        try:
            send_message(conn, {"op": "outcome", "outcome": record})
        except (OSError, ProtocolError):
            return 1
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
