"""The resident helper: judges and records on behalf of ``guard run`` clients.

One daemon per user, interpreter and package version (see
:func:`~.protocol.socket_path`). It listens on a Unix socket in a 0700
directory under guard's home, serves only peers of its own uid (checked with
SO_PEERCRED) that are not themselves inside a guarded process tree, and exits
after a stretch of idleness or as soon as its code changes on disk.

A connection carries one command: ``run`` -> (``blocked`` | ``error`` |
``fallback`` | ``start``), and after ``start`` the client's ``finished`` ->
``ok``. If the client vanishes after ``start``, the daemon still records
``command.finished`` (with the error), so no record is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from statetrace_guard.daemon.protocol import (
    ProtocolError,
    code_fingerprint,
    recv_message,
    send_message,
)
from statetrace_guard.daemon.wire import plan_to_wire
from statetrace_guard.errors import ExitCode, GuardError, run_exit_code
from statetrace_guard.execute import Blocked, Prepared, RunOptions, finish, prepare
from statetrace_guard.invocation import resolve_invocation

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "Daemon",
    "inside_guarded_tree",
    "main",
    "peer_credentials",
    "warm_up",
]

DEFAULT_IDLE_SECONDS = 900.0
_ACTIVE_MARKER = b"STATETRACE_GUARD_ACTIVE=1"
_CLIENT_LOST = "guard client ended before reporting the outcome"


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """Return (pid, uid, gid) of the process at the other end (Linux)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def inside_guarded_tree(pid: int) -> bool:
    """True when ``pid`` runs under a guard: its environment carries the marker.

    Guarded programs may not drive the daemon: it would let them write
    records in the operator's trail. An unreadable environment counts as
    inside (fail closed).
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return _ACTIVE_MARKER in handle.read().split(b"\0")
    except OSError:
        return True


class Daemon:
    """A listening socket, a judging lock, and the idle clock."""

    def __init__(self, path: str, idle_seconds: float = DEFAULT_IDLE_SECONDS) -> None:
        """Remember where to listen; nothing is bound yet."""
        self.path = path
        self.idle_seconds = idle_seconds
        self.fingerprint = code_fingerprint()
        self._judging = threading.Lock()
        self._last_use = time.monotonic()
        self._stop = threading.Event()

    def serve_forever(self) -> None:
        """Accept clients until idle, stale or stopped."""
        with _bound_socket(self.path) as server:
            server.settimeout(1.0)
            while not self._stop.is_set():
                if time.monotonic() - self._last_use > self.idle_seconds:
                    break
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                self._last_use = time.monotonic()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._serve_one(conn)
            except (ProtocolError, OSError):
                return
            except Exception as exc:  # noqa: BLE001 - a bug must fail closed, not fall back
                # A record may already be written: answering "error" (125)
                # keeps the client from judging and recording it again.
                with contextlib.suppress(OSError, ProtocolError):
                    send_message(
                        conn,
                        _error(
                            f"guard daemon failed: {exc!r}", ExitCode.RUN_GUARD_FAILED
                        ),
                    )
            finally:
                self._last_use = time.monotonic()

    def _serve_one(self, conn: socket.socket) -> None:
        pid, uid, _ = peer_credentials(conn)
        if uid != os.geteuid():
            return  # another user: say nothing at all
        request = recv_message(conn)
        if request.get("op") == "ping":
            send_message(conn, {"op": "pong", "pid": os.getpid()})
            return
        if code_fingerprint() != self.fingerprint:
            send_message(conn, {"op": "fallback", "reason": "stale daemon"})
            self._stop.set()
            return
        if inside_guarded_tree(pid):
            send_message(
                conn,
                _error(
                    "guard run from inside a guarded program is not served",
                    ExitCode.RUN_GUARD_FAILED,
                ),
            )
            return
        self._run(conn, request)

    def _run(self, conn: socket.socket, request: dict[str, Any]) -> None:
        with self._judging:
            answer = _prepare(request)
        if not isinstance(answer, Prepared):
            send_message(conn, answer)
            return
        try:
            send_message(conn, _start_message(answer))
            outcome = _await_outcome(conn)
            with self._judging:
                finish(answer, outcome)
            with contextlib.suppress(OSError, ProtocolError):
                send_message(conn, {"op": "ok"})
        finally:
            shutil.rmtree(answer.private_tmp, ignore_errors=True)


def _await_outcome(conn: socket.socket) -> dict[str, Any]:
    try:
        message = recv_message(conn)
    except (ProtocolError, OSError):
        return {"exit_status": None, "error": _CLIENT_LOST}
    outcome = message.get("outcome")
    if message.get("op") != "finished" or not isinstance(outcome, dict):
        return {"exit_status": None, "error": _CLIENT_LOST}
    return outcome


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


def _start_message(prepared: Prepared) -> dict[str, Any]:
    return {
        "op": "start",
        "plan": plan_to_wire(prepared.plan, prepared.backend),
        "trail": {
            "log_dir": str(prepared.trail.log_dir),
            "session_id": prepared.facts.session_id,
            "facts": _facts_wire(prepared),
        },
        "spec": {
            "private_tmp": prepared.private_tmp,
            "argv": list(prepared.argv),
            "cwd": prepared.cwd,
            "env": dict(prepared.env),
            "timeout": prepared.timeout,
            "grace": prepared.grace,
            "max_memory": prepared.max_memory,
            "max_processes": prepared.max_processes,
            "allow_background": prepared.allow_background,
        },
    }


def _facts_wire(prepared: Prepared) -> dict[str, Any]:
    """The facts as plain values, so a client can record the finish alone."""
    facts = prepared.facts
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in vars(facts).items()
        if name not in {"env", "extra"}
    } | {"env": dict(facts.env), "extra": dict(facts.extra)}


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
    import statetrace_guard.audit.trail  # noqa: PLC0415
    import statetrace_guard.classify.argv  # noqa: PLC0415
    import statetrace_guard.classify.powershell  # noqa: PLC0415
    import statetrace_guard.runner  # noqa: PLC0415
    import statetrace_guard.sandbox.linux  # noqa: F401, PLC0415
    from statetrace_guard.classify import bash  # noqa: PLC0415
    from statetrace_guard.sandbox import select_backend  # noqa: PLC0415

    bash.parser()
    select_backend()


def main(argv: list[str] | None = None) -> None:
    """``python -m statetrace_guard.daemon.server SOCKET [IDLE_SECONDS]``."""
    args = sys.argv[1:] if argv is None else argv
    path = args[0]
    idle = float(args[1]) if len(args) > 1 else DEFAULT_IDLE_SECONDS
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    warm_up()
    Daemon(path, idle).serve_forever()


if __name__ == "__main__":
    main()
