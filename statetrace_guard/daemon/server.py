"""The resident helper: judges and records on behalf of ``guard run`` clients.

One daemon per user, interpreter and package version (see
:func:`~.protocol.socket_path`). It listens on a Unix socket in a 0700
directory under guard's home, serves only peers of its own uid (checked with
SO_PEERCRED) that are not themselves inside a guarded process tree, and exits
after a stretch of idleness (once no command is in flight) or soon after its
code changes on disk.

A connection carries one command: ``run`` -> ``blocked`` | ``error`` |
``fallback``, or, once ``command.started`` is on disk, one of:

* ``running`` ... ``exit``: the program runs under a supervisor forked by
  the launcher (:mod:`.launcher`), on the client's own descriptors; the
  supervisor reports the outcome here, this process records it and answers.
* ``start`` -> the client's ``finished`` -> ``ok``: the client runs the
  program itself (a terminal, a context unlike ours, see :mod:`.peer`).

This process never forks per command and never waits for a program: one
selector loop serves new clients, outcomes, and clients' reports alike. A
client that vanishes mid-command still gets its ``command.finished`` (with
the error), so no record is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import selectors
import shutil
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.daemon.launcher import recv_packet, send_packet
from statetrace_guard.daemon.peer import (
    PeerView,
    examine,
    inside_guarded_tree,
    placement_refusal,
)
from statetrace_guard.daemon.protocol import (
    ProtocolError,
    code_fingerprint,
    recv_message,
    recv_message_with_fds,
    send_message,
)
from statetrace_guard.daemon.wire import plan_to_wire, spec_to_wire
from statetrace_guard.errors import ExitCode, GuardError, run_exit_code
from statetrace_guard.execute import Blocked, Prepared, RunOptions, finish, prepare
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.sweep import TreeCache

__all__ = [
    "CLIENT_LOST",
    "DEFAULT_IDLE_SECONDS",
    "MAX_PASSED_FDS",
    "Daemon",
    "main",
    "peer_credentials",
    "warm_up",
]

DEFAULT_IDLE_SECONDS = 900.0
CLIENT_LOST = "guard client ended before reporting the outcome"
# SCM_MAX_FD is 253 on Linux: the connection and 250 of the client's own.
MAX_PASSED_FDS = 250
# A client sends its request right after connecting; one that does not
# must not hold up the others for long (the loop is serial).
_REQUEST_TIMEOUT_S = 2.0
# Re-reading every file's mtime costs ~0.5 ms: once a second is enough to
# notice an upgrade, and it stays off the requests' path.
_FINGERPRINT_EVERY_S = 1.0
_FD_CEILING = 1 << 20  # above any RLIMIT_NOFILE: a number that cannot be real


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """Return (pid, uid, gid) of the process at the other end (Linux)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


@dataclass
class _InFlight:
    """A started command whose outcome is still to be recorded."""

    conn: socket.socket
    prepared: Prepared
    channel: socket.socket | None  # the launcher channel it went out on


class Daemon:
    """The listening socket, the launcher, and the commands in flight."""

    def __init__(self, path: str, idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:
        """Remember where to listen; nothing is bound or started yet."""
        self.path = path
        self.idle_seconds = idle_seconds
        self.fingerprint = code_fingerprint()
        self._checked_at = 0.0
        self._last_use = time.monotonic()
        self._stale = False
        self._selector = selectors.DefaultSelector()
        self._inflight: dict[int, _InFlight] = {}
        self._next_id = 0
        self._launcher: socket.socket | None = None
        self._launcher_pid = 0
        # Directory listings per workspace for the sweep after each command.
        self._trees: dict[str, TreeCache] = {}

    def serve_forever(self) -> None:
        """Serve until idle or stale, and until no command is in flight."""
        with _bound_socket(self.path) as server:
            server.settimeout(None)
            self._selector.register(server, selectors.EVENT_READ, self._accept)
            while self._inflight or not (self._stale or self._idle()):
                events = self._selector.select(timeout=1.0)
                for key, _ in events:
                    key.data(key.fileobj)
                if not events:
                    self._check_code()
                self._reap_launcher()

    def _idle(self) -> bool:
        return time.monotonic() - self._last_use > self.idle_seconds

    def _check_code(self) -> bool:
        """True (and serve no more) when the package changed on disk."""
        now = time.monotonic()
        if now - self._checked_at >= _FINGERPRINT_EVERY_S:
            self._checked_at = now
            self._stale = code_fingerprint() != self.fingerprint
        return self._stale

    # -- new clients ------------------------------------------------------

    def _accept(self, server: socket.socket) -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        self._last_use = time.monotonic()
        self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        kept = False
        try:
            conn.settimeout(_REQUEST_TIMEOUT_S)
            pid, uid, _ = peer_credentials(conn)
            if uid != os.geteuid():
                return  # another user: say nothing at all
            request, fds = recv_message_with_fds(conn, MAX_PASSED_FDS)
            kept = self._serve_one(conn, pid, request, fds)
        except (ProtocolError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - a bug must fail closed, not fall back
            # A record may already be written: answering "error" (125)
            # keeps the client from judging and recording it again.
            with contextlib.suppress(OSError, ProtocolError):
                send_message(
                    conn,
                    _error(f"guard daemon failed: {exc!r}", ExitCode.RUN_GUARD_FAILED),
                )
        finally:
            for fd in fds:
                os.close(fd)
            if not kept:
                conn.close()

    def _serve_one(
        self, conn: socket.socket, pid: int, request: dict[str, Any], fds: list[int]
    ) -> bool:
        """Answer one request; True when the connection stays in flight."""
        if request.get("op") == "ping":
            send_message(conn, {"op": "pong", "pid": os.getpid()})
            return False
        if self._check_code():
            send_message(conn, {"op": "fallback", "reason": "stale daemon"})
            return False
        refusal = _refusal(pid)
        if refusal is not None:
            send_message(conn, refusal)
            return False
        answer = _answer(request)
        if not isinstance(answer, Prepared):
            send_message(conn, answer)
            return False
        client = _client_to_run_for(request, pid, fds)
        if client is not None and self._launch(
            conn, answer, request["fds"], fds, client.umask
        ):
            return True
        self._let_client_run(conn, answer)
        return True

    # -- programs run by the launcher's supervisors -----------------------

    def _launch(
        self,
        conn: socket.socket,
        prepared: Prepared,
        numbers: list[int],
        fds: list[int],
        umask: int | None,
    ) -> bool:
        """Hand the command to a supervisor; False leaves it to the client.

        ``fds`` are the client's descriptors received here, ``numbers`` the
        numbers they had there (and get in the program).
        """
        channel = self._ensure_launcher()
        if channel is None:
            return False
        self._next_id += 1
        message = {
            "op": "launch",
            "id": self._next_id,
            "spec": spec_to_wire(prepared),
            "plan": plan_to_wire(prepared.plan, prepared.backend),
            "fds": numbers,
            "umask": umask,
        }
        try:
            send_packet(channel, message, (conn.fileno(), *fds))
        except ProtocolError:
            return False  # an environment too large for one packet
        except OSError:
            self._forget_launcher()
            return False
        self._inflight[self._next_id] = _InFlight(conn, prepared, channel)
        conn.settimeout(None)
        with contextlib.suppress(OSError, ProtocolError):
            send_message(
                conn,
                {
                    "op": "running",
                    "trail": trail_wire(prepared),
                    "private_tmp": prepared.private_tmp,
                    "warnings": list(prepared.warnings),
                },
            )
        return True

    def _from_launcher(self, channel: socket.socket) -> None:
        try:
            message, fds = recv_packet(channel)
        except (ProtocolError, OSError):
            self._channel_closed(channel)
            return
        for fd in fds:
            os.close(fd)
        command = self._inflight.pop(message.get("id"), None)  # type: ignore[arg-type]
        if command is None:
            return
        if message.get("op") == "outcome" and isinstance(message.get("outcome"), dict):
            self._record(command, message["outcome"] | {"supervised_by": "daemon"})
        else:
            self._lost(command, str(message.get("error", "supervisor lost")))

    def _lost(self, command: _InFlight, error: str) -> None:
        text = f"guard: {error}"
        outcome = {"exit_status": int(ExitCode.RUN_GUARD_FAILED), "error": error}
        self._record(command, outcome | {"supervised_by": "daemon"}, [text])

    def _record(
        self,
        command: _InFlight,
        outcome: dict[str, Any],
        said: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        """Write ``command.finished``, then give the client its exit status."""
        status = int(outcome.get("exit_status") or 0)
        self._conclude(command, outcome, {"op": "exit", "status": status}, said)

    def _conclude(
        self,
        command: _InFlight,
        outcome: dict[str, Any],
        answer: dict[str, Any],
        said: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        """Record the finish, answer the client with the warnings, clean up."""
        tree = self._trees.setdefault(command.prepared.workspace, TreeCache())
        warnings = [*said, *finish(command.prepared, outcome, tree)]
        with contextlib.suppress(OSError, ProtocolError):
            send_message(command.conn, answer | {"warnings": warnings})
        command.conn.close()
        shutil.rmtree(command.prepared.private_tmp, ignore_errors=True)
        self._last_use = time.monotonic()

    def _ensure_launcher(self) -> socket.socket | None:
        # A launch sent to a dead launcher would wait for a reader that never
        # comes (its supervisors still hold the channel open): look first.
        self._reap_launcher()
        if self._launcher is not None:
            return self._launcher
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return None
        theirs.set_inheritable(True)
        argv = [sys.executable, "-m", "statetrace_guard.daemon.launcher"]
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:  # pragma: no cover - replaced by exec at once
            try:
                os.execv(sys.executable, [*argv, str(theirs.fileno())])  # noqa: S606
            finally:
                os._exit(127)
        theirs.close()
        self._launcher, self._launcher_pid = ours, pid
        self._selector.register(ours, selectors.EVENT_READ, self._from_launcher)
        return ours

    def _forget_launcher(self) -> None:
        """Start a new launcher next time; the old channel drains on its own."""
        self._launcher = None

    def _reap_launcher(self) -> None:
        if not self._launcher_pid:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(self._launcher_pid, os.WNOHANG)[0]:
                self._launcher_pid = 0
                self._forget_launcher()

    def _channel_closed(self, channel: socket.socket) -> None:
        """No launcher or supervisor holds ``channel`` any more."""
        self._selector.unregister(channel)
        channel.close()
        if channel is self._launcher:
            self._forget_launcher()
        for key, command in list(self._inflight.items()):
            if command.channel is channel:
                del self._inflight[key]
                self._lost(command, "the supervisor ended before the program")

    # -- programs the client runs itself ----------------------------------

    def _let_client_run(self, conn: socket.socket, prepared: Prepared) -> None:
        command = _InFlight(conn, prepared, None)
        try:
            send_message(conn, start_message(prepared))
        except (OSError, ProtocolError):  # gone already: the start is on disk
            self._client_finished(command, {"exit_status": None, "error": CLIENT_LOST})
            return
        self._selector.register(
            conn, selectors.EVENT_READ, lambda _conn: self._client_reported(command)
        )

    def _client_reported(self, command: _InFlight) -> None:
        try:
            message = recv_message(command.conn)
        except (ProtocolError, OSError):
            message = {}
        if message.get("op") == "signal":
            return  # relayed before the client's runner took over
        self._selector.unregister(command.conn)
        outcome = message.get("outcome")
        if message.get("op") != "finished" or not isinstance(outcome, dict):
            outcome = {"exit_status": None, "error": CLIENT_LOST}
        self._client_finished(command, outcome)

    def _client_finished(self, command: _InFlight, outcome: dict[str, Any]) -> None:
        self._conclude(command, outcome | {"supervised_by": "client"}, {"op": "ok"})


def _client_to_run_for(
    request: dict[str, Any], pid: int, fds: list[int]
) -> PeerView | None:
    """The client, when its program may run under our supervisor; else None.

    None when the client asked to run it, its list of descriptors does not
    match what arrived, or its process context differs from ours.
    """
    numbers = request.get("fds")
    if request.get("runner") != "daemon" or not isinstance(numbers, list):
        return None
    if len(numbers) != len(fds) or not all(
        isinstance(n, int) and 0 <= n < _FD_CEILING for n in numbers
    ):
        return None
    client = examine(pid)
    return None if client.differences else client


def start_message(prepared: Prepared) -> dict[str, Any]:
    """``start``: the plan and parameters for a client that runs the program."""
    return {
        "op": "start",
        "plan": plan_to_wire(prepared.plan, prepared.backend),
        "trail": trail_wire(prepared),
        "spec": spec_to_wire(prepared) | {"private_tmp": prepared.private_tmp},
        "warnings": list(prepared.warnings),
    }


def trail_wire(prepared: Prepared) -> dict[str, Any]:
    """Where and what to record, so a client can write the finish alone."""
    facts = prepared.facts
    plain = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in vars(facts).items()
        if name not in {"env", "extra"}
    }
    return {
        "log_dir": str(prepared.trail.log_dir),
        "session_id": facts.session_id,
        "facts": plain | {"env": dict(facts.env), "extra": dict(facts.extra)},
    }


def _answer(request: dict[str, Any]) -> Prepared | dict[str, Any]:
    """A ``run`` request's preparation, or the answer to a ``guard hook`` call."""
    if request.get("op") == "hook":
        from statetrace_guard.hooks.main import serve_hook  # noqa: PLC0415

        return serve_hook(request)
    return _prepare(request)


def _prepare(request: dict[str, Any]) -> Prepared | dict[str, Any]:
    """Judge and record the start exactly as the in-process path would."""
    try:
        options = request["options"]
        invocation = resolve_invocation(
            level=options.get("level"),
            policy=_path(options.get("policy")),
            log_dir=_path(options.get("log_dir")),
            env=dict(request["env"]),
            cwd=Path(request["cwd"]),
        )
        prepared = prepare(invocation, _run_options(request, options))
    except GuardError as error:
        return _error(error.message, run_exit_code(error.exit_code), error.hint())
    except (KeyError, TypeError, ValueError) as exc:
        return _error(f"malformed request: {exc}", ExitCode.RUN_GUARD_FAILED)
    if isinstance(prepared, Blocked):
        return {
            "op": "blocked",
            "message": prepared.message,
            "exit": int(prepared.exit_status),
            "stdout": prepared.stdout,
        }
    return prepared


def _run_options(request: dict[str, Any], options: dict[str, Any]) -> RunOptions:
    return RunOptions(
        argv=tuple(request["argv"]),
        session=options.get("session"),
        task=options.get("task"),
        timeout=options.get("timeout"),
        grace=options.get("grace"),
        durable=bool(options.get("durable")),
        require_sandbox=bool(options.get("require_sandbox")),
        max_memory=options.get("max_memory"),
        max_processes=options.get("max_processes"),
        pid=int(request["pid"]),
        via="daemon",
    )


def _refusal(pid: int) -> dict[str, Any] | None:
    """The answer for a client the helper does not serve, or None.

    A guarded program is refused (125). A client the helper cannot place
    (issue 12 K11) is sent to the in-process path: it judges and records
    with its own powers, never the helper's.
    """
    if inside_guarded_tree(pid):
        return _error(
            "guard run from inside a guarded program is not served",
            ExitCode.RUN_GUARD_FAILED,
        )
    unplaced = placement_refusal(pid)
    if unplaced is not None:
        return {"op": "fallback", "reason": unplaced}
    return None


def _error(message: str, code: int, hint: str | None = None) -> dict[str, Any]:
    return {"op": "error", "message": message, "hint": hint, "exit": int(code)}


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value else None


@contextlib.contextmanager
def _bound_socket(path: str) -> Any:  # noqa: ANN401 - a generator context manager
    """Bind ``path`` owner-only; exactly one daemon holds the lock beside it."""
    lock = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        sys.exit(0)  # another daemon serves this socket
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old_umask)
    server.listen(64)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(lock)


def warm_up() -> None:
    """Load everything a request needs now, so the first client waits for none."""
    import structlog  # noqa: F401, PLC0415 - the trail's front end loads it on first use

    import statetrace_guard.audit.trail  # noqa: PLC0415
    import statetrace_guard.classify.argv  # noqa: PLC0415
    import statetrace_guard.classify.powershell  # noqa: PLC0415
    import statetrace_guard.sandbox.linux  # noqa: F401, PLC0415
    from statetrace_guard.classify import bash  # noqa: PLC0415
    from statetrace_guard.classify.registry import builtin_knowledge  # noqa: PLC0415
    from statetrace_guard.sandbox import select_backend  # noqa: PLC0415

    bash.parser()
    builtin_knowledge().index_all()  # the program registry, loaded once per helper
    select_backend()


def main(argv: list[str] | None = None) -> None:
    """``python -m statetrace_guard.daemon.server SOCKET [IDLE_SECONDS]``."""
    args = sys.argv[1:] if argv is None else argv
    path = args[0]
    idle = float(args[1]) if len(args) > 1 else DEFAULT_IDLE_SECONDS
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    warm_up()
    gc.freeze()  # long-lived: keep the collector off what never changes
    Daemon(path, idle).serve_forever()


if __name__ == "__main__":
    main()
