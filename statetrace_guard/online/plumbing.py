"""The egress proxy beside one program: its process, its environment, its end.

At L3 with the operator's opt-in, a supervisor (``guard run`` itself, or the
resident helper's supervisor) calls :func:`start_proxy` before it forks the
program. That forks the proxy process, which waits on one end of a socket
pair; the other end (:attr:`ProxyProcess.channel`) goes to the program's
child setup, which, once inside the program's network namespace, creates
the listening socket on ``127.0.0.1:3128`` there and sends it over
(``sandbox.proxy_socket.send_listener``). A socket belongs to the namespace
it was made in, so the proxy serves the program's loopback from outside, with no bridge
process inside and no extra copy.

NOTE(online): chosen over a Unix socket bridged to a loopback port inside the
namespace (the issue's sketch): that needs a relay process in the program's
namespace (one more copy of every byte, one more process the program can
see and kill) and a Unix socket path reachable from the sandbox; the
socket-made-inside needs neither and works the same with or without a user
namespace, because the child that enters the namespace makes the socket.

The proxy process keeps nothing of the supervisor's but the socket pair
(stdio on ``/dev/null``), is in a process group of its own (a terminal's
Ctrl-C is the program's), dies with the supervisor (``PDEATHSIG``), is not
dumpable (the program, same uid, cannot ptrace it or read its memory), and
writes one session record and one NetOps line per connection. If a record
cannot be written it refuses every later connection. :meth:`ProxyProcess.stop`
ends it after the program; if it had died before, ``stop`` says how, and the
caller records that (:func:`~statetrace_guard.audit.netops.proxy_record`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statetrace_guard.sandbox.proxy_socket import (
    PROXY_PORT,
    proxy_environment,
    reserve_proxy_channel,
    send_listener,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from statetrace_guard.online.proxy import Connection
    from statetrace_guard.sandbox.base import SandboxPlan

__all__ = [
    "PROXY_PORT",
    "ProxyProcess",
    "proxy_environment",
    "send_listener",
    "start_for",
    "start_proxy",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
# Long enough for the last connections' records: the proxy forked by the
# helper's supervisor imports the audit modules itself (~0.2 s, seconds on a
# loaded machine) before its first record.
STOP_GRACE_S = 10.0


@dataclass
class ProxyProcess:
    """A running proxy; ``channel`` is the end the program's setup sends on."""

    pid: int
    channel: int
    exit_status: int | None = None

    def close_channel(self) -> None:
        """Close the program's end here (after the program was forked)."""
        if self.channel >= 0:
            with contextlib.suppress(OSError):
                os.close(self.channel)
            self.channel = -1

    def stop(self, grace: float = STOP_GRACE_S) -> str | None:
        """End the proxy; say how it ended if it had died on its own before.

        Returns:
            None when it was running (the usual case), else e.g.
            ``the proxy was killed by signal 9``.
        """
        self.close_channel()
        died = self._reap(os.WNOHANG)
        if died is not None:
            return _describe(died)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self._reap(os.WNOHANG) is not None:
                return None
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap(0)
        return None

    def _reap(self, flags: int) -> int | None:
        if self.exit_status is not None:
            return self.exit_status
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            self.exit_status = 0
            return 0
        if pid == 0:
            return None
        self.exit_status = status
        return status


def _describe(status: int) -> str | None:
    if os.WIFSIGNALED(status):
        return f"the proxy was killed by signal {os.WTERMSIG(status)}"
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else f"the proxy failed (exit {code})"


def start_proxy(plan: Mapping[str, Any]) -> ProxyProcess:
    """Fork the proxy for one program; call in a single-threaded supervisor.

    Args:
        plan: ``egress`` (``Egress.to_wire()``), ``command`` (the command's
            record fields), ``log_dir``, ``durable``, ``lock_timeout``.

    Raises:
        OSError: it cannot be started (the program must not run).
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked proxy (tested end to end)
        status = 1
        try:
            theirs.close()
            status = _proxy_main(ours, plan, parent)
        finally:
            os._exit(status)
    ours.close()
    channel = theirs.detach()
    return ProxyProcess(pid, channel)


def start_for(plan: SandboxPlan) -> ProxyProcess | None:
    """Start the proxy ``plan`` asks for and reserve its channel for the child.

    None when the plan asks for none. A plan that asks for the proxy but
    carries no egress plan gets none: its program then has no way out.

    Raises:
        OSError: the proxy cannot be started (the program must not run).
    """
    egress = plan.details.get("egress")
    if plan.enforcement.get("network") != "proxy" or not isinstance(egress, dict):
        return None
    proxy = start_proxy(egress)
    reserve_proxy_channel(proxy.channel)  # the child setup takes and closes it
    proxy.channel = -1
    return proxy


def _prctl(option: int, value: int) -> None:
    from statetrace_guard.sandbox.landlock import libc  # noqa: PLC0415 - Linux only

    libc().prctl(option, value, 0, 0, 0)


def _isolate(control: socket.socket, parent: int) -> None:
    """Detach the proxy from everything of the supervisor's it does not need."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(_PR_SET_DUMPABLE, 0)
    if os.getppid() != parent:  # the supervisor died before PDEATHSIG was set
        os._exit(1)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = control.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))  # close_range(2)


def _proxy_main(control: socket.socket, plan: Mapping[str, Any], parent: int) -> int:
    """The proxy process: wait for the listener, serve it until SIGTERM."""
    _isolate(control, parent)
    recorder = _Recorder(plan)
    # Load the recording path while the program starts, not at its first record.
    threading.Thread(target=recorder.warm, daemon=True).start()
    _, fds, _, _ = socket.recv_fds(control, 16, 1)
    if not fds:
        return 0  # the program never started
    from statetrace_guard.online.egress import egress_from_wire  # noqa: PLC0415
    from statetrace_guard.online.proxy import ProxyServer  # noqa: PLC0415

    server = ProxyServer(
        socket.socket(fileno=fds[0]),
        egress_from_wire(plan["egress"]),
        recorder,
        refuse=recorder.failed,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.close(STOP_GRACE_S - 1))
    server.serve()
    return 0


class _Recorder:
    """Writes each connection's records; remembers a failure to write."""

    def __init__(self, plan: Mapping[str, Any]) -> None:
        self._plan = plan
        self._lock = threading.Lock()
        self._trail: Any = None
        self.failed = threading.Event()

    def warm(self) -> None:
        """Import and open what recording needs (errors surface on use)."""
        with contextlib.suppress(Exception), self._lock:
            from statetrace_guard.audit.netops import connection_record  # noqa: F401, PLC0415

            self._get_trail()

    def __call__(self, connection: Connection) -> None:
        from statetrace_guard.audit.netops import connection_record  # noqa: PLC0415
        from statetrace_guard.errors import AuditError  # noqa: PLC0415

        record = connection_record(self._plan["command"], connection.as_fields())
        with self._lock:
            try:
                self._get_trail().connection(record)
            except AuditError:
                self.failed.set()  # refuse every later connection: fail closed

    def _get_trail(self) -> Any:  # noqa: ANN401 - Trail, imported lazily
        if self._trail is None:
            from pathlib import Path  # noqa: PLC0415

            from statetrace_guard.audit.trail import Trail  # noqa: PLC0415

            self._trail = Trail(
                Path(self._plan["log_dir"]),
                str(self._plan["command"]["session_id"]),
                durable=bool(self._plan.get("durable")),
                lock_timeout=float(self._plan.get("lock_timeout", 10.0)),
                front="direct",
            )
        return self._trail
