"""The resident helper: judges and records on behalf of ``guard run`` clients.

One daemon per user, interpreter and package version (see
:func:`~.protocol.socket_path`). It listens on a Unix socket in a 0700
directory under guard's home, serves only peers of its own uid (checked with
SO_PEERCRED) that are not themselves inside a guarded process tree, and exits
after a stretch of idleness (once no command is in flight) or soon after its
code changes on disk. It works from ``/`` and holds no log open between
records, so the volumes it writes to can be unmounted.

A connection carries one command: ``run`` -> ``blocked`` | ``error`` |
``fallback``, or, once ``command.started`` is on disk, one of:

* ``started`` (where the start landed), then the supervisor's ``running``,
  the client's ``go``, the supervisor's ``outcome``, and this process's
  ``exit`` once ``command.finished`` is on disk: the program runs under a
  supervisor forked by the launcher (:mod:`.launcher`), on the client's own
  descriptors. Should the supervisor or the launcher be lost, this process
  asks the client (``lost``) what it knows (``finished``: not started, its
  outcome, or nothing) before it records anything, and answers ``exit``,
  or ``fallback`` when nothing ran.
* ``start`` -> the client's ``go`` ... ``finished`` -> ``ok``: the client
  runs the program itself (a terminal, a context unlike ours, see
  :mod:`.peer`).

The client alone decides whether a program starts (``go``); every finish
names its start and lands once, whoever writes it (this process, or the
client when this one is gone or stopped).

Threads: the main thread runs one selector loop (new connections, the
launcher's channel, supervisors' pidfds, clients' reports) and never waits
on a file lock; everything that reads a request or writes a record runs in
a small pool of worker threads, so a session whose log lock is stuck holds
up its own commands only. Judging (the classifier, the policy caches) is
serialised by one lock; writing records is not.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import gc
import heapq
import itertools
import os
import queue
import select
import selectors
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statetrace_guard.daemon.launcher import MAX_PACKET, recv_packet, send_packet
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
    send_message,
)
from statetrace_guard.daemon.wire import plan_to_wire, spec_to_wire
from statetrace_guard.errors import ExitCode, GuardError, run_exit_code
from statetrace_guard.execute import (
    PARKED_WARNING,
    Assessed,
    Blocked,
    Prepared,
    RunOptions,
    commit,
    finish,
    judge_command,
)
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.sweep import TreeCache

if TYPE_CHECKING:
    from statetrace_guard.sandbox.base import SandboxBackend, SandboxPlan

__all__ = [
    "CLIENT_LOST",
    "DEFAULT_IDLE_SECONDS",
    "MAX_PASSED_FDS",
    "OUTCOME_UNKNOWN",
    "Daemon",
    "main",
    "peer_credentials",
    "start_message",
    "trail_wire",
    "warm_up",
]

DEFAULT_IDLE_SECONDS = 900.0
CLIENT_LOST = "guard client ended before reporting the outcome"
OUTCOME_UNKNOWN = (
    "the part of guard that watched the program was lost before it learnt how "
    "the program ended (outcome unknown: look before running it again)"
)
NOT_RUN = "nothing ran: the guard client gave up or ended before the start"
# SCM_MAX_FD is 253 on Linux: the connection and 250 of the client's own.
MAX_PASSED_FDS = 250
# A client sends its request right after connecting; a worker waits this
# long for it (the main loop never waits for a client).
_REQUEST_TIMEOUT_S = 2.0
# Re-reading every file's mtime costs ~2 ms: once a second is enough to
# notice an upgrade, and it stays off the requests' path (done after a
# request is answered, or on an idle turn).
_FINGERPRINT_EVERY_S = 1.0
_FINGERPRINT_LATE_S = 5.0  # a request itself walks the package only this late
_FD_CEILING = 1 << 20  # above any RLIMIT_NOFILE: a number that cannot be real
# A client asked what it knows answers at once; one that does not within
# this time (stopped, stuck) gets the outcome recorded as unknown.
_ANSWER_S = 30.0
# After the launcher dies, a supervisor it forked just before may still be
# starting: its "forked" comes first. Ask clients only after this grace.
_LAUNCHER_GRACE_S = 1.0
_WORKER_IDLE_S = 30.0
_LOOP_TICK_S = 1.0
# Finishes kept in guard's home are retried this often by the helper.
_FLUSH_EVERY_S = 5.0


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
    pid: int = 0  # the supervisor, once it said "forked"
    pidfd: int = -1
    state: str = "launching"  # launching | running | asking | client | done
    client_started: bool = False  # client-run: the client said "go"
    timer: int = 0


class _Pool:
    """Worker threads, started on demand, ended after a while idle."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.busy = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a worker (a new one when none is idle)."""
        with self._lock:
            self.busy += 1
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_WORKER_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue
            try:
                job()
            finally:
                # Drop the job now: what it holds (a trail's open log files)
                # must not wait for the next job to be released.
                del job
                with self._lock:
                    self.busy -= 1
                    self._idle += 1


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
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # _inflight and the launcher fields
        self._judging = threading.Lock()  # the classifier and its caches
        self._pool = _Pool()
        self._launcher: socket.socket | None = None
        self._launcher_pid = 0
        self._launcher_pidfd: int | None = None  # readable once it has ended
        self._soon: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count(1)
        self._cancelled: set[int] = set()
        self._flushed_at = time.monotonic()
        self._parked_logs: set[tuple[str, str]] = set()
        # Directory listings per workspace for the sweep after each command.
        self._trees: dict[str, TreeCache] = {}

    def serve_forever(self) -> None:
        """Serve until idle or stale, and until no command is in flight."""
        with _bound_socket(self.path) as server:
            server.settimeout(None)
            self._selector.register(server, selectors.EVENT_READ, self._accept)
            self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake)
            self._ensure_launcher()
            while self._busy() or not (self._stale or self._idle()):
                events = self._selector.select(timeout=self._next_timeout())
                for key, _ in events:
                    key.data(key.fileobj)
                self._run_timers()
                if not events:
                    self._check_code()
                self._retry_parked()
                if self._launcher_pidfd is None:
                    # No pidfd says when it ends: look each turn.
                    self._reap_launcher()

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._inflight) or self._pool.busy > 0

    def _idle(self) -> bool:
        return time.monotonic() - self._last_use > self.idle_seconds

    def _check_code(self, every: float = _FINGERPRINT_EVERY_S) -> bool:
        """True (and serve no more) when the package changed on disk.

        Looked at when ``every`` seconds have passed since the last look
        (a walk of the package: ~2 ms).
        """
        now = time.monotonic()
        if now - self._checked_at >= every:
            self._checked_at = now
            self._stale = code_fingerprint() != self.fingerprint
        return self._stale

    # -- the loop's own plumbing --------------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the main thread (from any thread)."""
        self._soon.append(callback)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _wake(self, _fd: object) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while self._soon:
            self._soon.popleft()()

    def _after(self, delay: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` on the main thread after ``delay`` seconds."""
        timer = next(self._timer_ids)
        heapq.heappush(self._timers, (time.monotonic() + delay, timer, callback))
        return timer

    def _next_timeout(self) -> float:
        if not self._timers:
            return _LOOP_TICK_S
        return max(0.0, min(_LOOP_TICK_S, self._timers[0][0] - time.monotonic()))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, timer, callback = heapq.heappop(self._timers)
            if timer in self._cancelled:
                self._cancelled.discard(timer)
                continue
            callback()

    # -- new clients (read and judged on a worker) --------------------------

    def _accept(self, server: socket.socket) -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        self._last_use = time.monotonic()
        self._pool.submit(lambda: self._serve(conn))

    def _serve(self, conn: socket.socket) -> None:
        kept = False
        try:
            conn.settimeout(_REQUEST_TIMEOUT_S)
            pid, uid, _ = peer_credentials(conn)
            if uid != os.geteuid():
                return  # another user: say nothing at all
            # No descriptors come here (they go to the supervisor with "go");
            # any sent anyway are dropped by the kernel with a plain recv.
            request = recv_message(conn)
            conn.settimeout(None)
            kept = self._serve_one(conn, pid, request)
            self._check_code()  # answered: off the client's path
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
            if not kept:
                conn.close()

    def _serve_one(
        self, conn: socket.socket, pid: int, request: dict[str, Any]
    ) -> bool:
        """Answer one request; True when the connection stays in flight."""
        refusal = self._refusal(pid, request)
        if refusal is not None:
            send_message(conn, refusal)
            return False
        if request.get("op") == "hook":
            with self._judging:
                send_message(conn, _hook_answer(request))
            return False
        with self._judging:
            judged = _judge(request)
        if not isinstance(judged, Assessed):
            send_message(conn, judged)
            return False
        client = _client_to_run_for(request, pid) if judged.verdict.allowed else None
        command_id = next(self._ids)
        answer = _commit(
            judged,
            request,
            None if client is None else partial(self._expect, command_id),
        )
        if not isinstance(answer, Prepared):
            judged.trail.close()  # no log stays open between records
            send_message(conn, answer)
            return False
        answer.trail.close()  # no log stays open while the program runs
        if client is not None and self._launch(
            conn, answer, request["fds"], client.umask, command_id
        ):
            return True
        self._let_client_run(conn, answer)
        return True

    def _expect(
        self, command_id: int, plan: SandboxPlan, backend: SandboxBackend
    ) -> None:
        """Tell the waiting supervisor the plan of the launch to come.

        NOTE(speed): its init builds the program's view and seals itself
        (about 2 ms) while the start is written and the launch travels,
        instead of after. The launch must carry the same id, or that init
        is discarded (see the launcher's ``_await_launch``).
        """
        with self._lock:
            channel = self._launcher
        if channel is None:
            return
        message = {
            "op": "expect",
            "id": command_id,
            "plan": plan_to_wire(plan, backend),
        }
        with contextlib.suppress(OSError, ProtocolError):
            send_packet(channel, message)

    def _refusal(self, pid: int, request: dict[str, Any]) -> dict[str, Any] | None:
        """The answer when this request is not served here (None: serve it)."""
        if request.get("op") == "ping":
            return {"op": "pong", "pid": os.getpid()}
        # NOTE(speed): the walk is done after each request (``_serve``) and
        # on idle turns; a request walks only when neither happened lately.
        if self._check_code(every=_FINGERPRINT_LATE_S):
            return {"op": "fallback", "reason": "stale daemon"}
        return _refusal(pid)

    # -- programs run by the launcher's supervisors -------------------------

    def _launch(
        self,
        conn: socket.socket,
        prepared: Prepared,
        numbers: list[int],
        umask: int | None,
        command_id: int,
    ) -> bool:
        """Hand the command to a supervisor; False leaves it to the client.

        ``numbers`` are the client's inheritable descriptors (the program
        gets them at those numbers); the client sends them to the supervisor
        with its ``go``, never through here.
        """
        with self._lock:
            channel, launcher_pid = self._launcher, self._launcher_pid
        if channel is None:
            return False
        message = {
            "op": "launch",
            "id": command_id,
            "spec": spec_to_wire(prepared),
            "plan": plan_to_wire(prepared.plan, prepared.backend),
            "fds": numbers,
            "umask": umask,
            "warnings": list(prepared.warnings),
        }
        if not _fits(message):
            return False  # an environment too large for one packet
        command = _InFlight(conn, prepared, channel)
        try:
            send_message(conn, started_message(prepared, launcher_pid))
        except (OSError, ProtocolError):
            self._pool_finish(command, _not_run(), None)
            return True
        with self._lock:
            self._inflight[command_id] = command
        try:
            send_packet(channel, message, (conn.fileno(),))
        except (OSError, ProtocolError):
            # Never delivered (a seqpacket is all or nothing): nothing can
            # run it, so the client may.
            with self._lock:
                self._inflight.pop(command_id, None)
            self._pool_finish(command, _not_run(), {"op": "fallback"})
            return True
        return True

    def _from_launcher(self, channel: socket.socket) -> None:
        try:
            message, fds = recv_packet(channel)
        except (ProtocolError, OSError):
            self._channel_closed(channel)
            return
        for fd in fds:
            os.close(fd)
        op, command_id = message.get("op"), message.get("id")
        with self._lock:
            command = self._inflight.get(command_id)  # type: ignore[arg-type]
        if command is None:
            return
        if op == "forked" and isinstance(message.get("pid"), int):
            self._watch(command_id, command, message["pid"])  # type: ignore[arg-type]
        elif op == "outcome" and isinstance(message.get("outcome"), dict):
            self._done(command_id)  # type: ignore[arg-type]
            outcome = message["outcome"] | {"supervised_by": "daemon"}
            self._pool_finish(command, outcome, _exit_answer(outcome))
        elif op == "unlaunched":
            # No supervisor was made: the client may run it itself.
            self._done(command_id)  # type: ignore[arg-type]
            self._pool_finish(command, _not_run(), {"op": "fallback"})
        elif op == "lost":
            self._ask_client(command_id)  # type: ignore[arg-type]

    def _watch(self, command_id: int, command: _InFlight, pid: int) -> None:
        """Follow the supervisor with a pidfd: its death without an outcome shows."""
        command.pid = pid
        if command.state == "launching":
            command.state = "running"
        try:
            command.pidfd = os.pidfd_open(pid)
        except OSError:
            return  # gone already, or no pidfds: the launcher reports it
        self._selector.register(
            command.pidfd,
            selectors.EVENT_READ,
            lambda _fd: self._supervisor_ended(command_id),
        )

    def _supervisor_ended(self, command_id: int) -> None:
        """The supervisor exited; its outcome, if any, is already queued."""
        with self._lock:
            command = self._inflight.get(command_id)
        if command is None:
            return
        self._unwatch(command)
        if command.channel is not None:
            self._drain(command.channel)
        self._ask_client(command_id)

    def _unwatch(self, command: _InFlight) -> None:
        if command.pidfd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(command.pidfd)
            os.close(command.pidfd)
            command.pidfd = -1

    def _drain(self, channel: socket.socket) -> None:
        """Handle every packet already waiting on ``channel``."""
        while channel.fileno() >= 0 and select.select([channel], [], [], 0)[0]:
            self._from_launcher(channel)

    def _done(self, command_id: int) -> _InFlight | None:
        """Take a command out of flight (stop watching its supervisor)."""
        with self._lock:
            command = self._inflight.pop(command_id, None)
        if command is None:
            return None
        command.state = "done"
        self._unwatch(command)
        if command.timer:
            self._cancelled.add(command.timer)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(command.conn)
        return command

    # -- when the watcher is lost: ask the client what it knows -------------

    def _ask_client(self, command_id: int) -> None:
        with self._lock:
            command = self._inflight.get(command_id)
        if command is None or command.state in {"asking", "done"}:
            return
        command.state = "asking"
        try:
            send_message(command.conn, {"op": "lost"})
        except (OSError, ProtocolError):
            self._answered(command_id, None)
            return
        self._selector.register(
            command.conn,
            selectors.EVENT_READ,
            lambda _conn: self._client_answer(command_id),
        )
        command.timer = self._after(_ANSWER_S, lambda: self._answered(command_id, None))

    def _client_answer(self, command_id: int) -> None:
        with self._lock:
            command = self._inflight.get(command_id)
        if command is None:
            return
        try:
            message = recv_message(command.conn)
        except (ProtocolError, OSError):
            message = None
        if message is not None and message.get("op") == "signal":
            return  # relayed before it read our question
        self._answered(command_id, message)

    def _answered(self, command_id: int, message: dict[str, Any] | None) -> None:
        """Record what the client knows (nothing: the outcome is unknown)."""
        if message is not None and message.get("running") and self._resumed(command_id):
            return
        command = self._done(command_id)
        if command is None:
            return
        if message is not None and message.get("not_run"):
            self._pool_finish(command, _not_run(), {"op": "fallback"})
            return
        outcome = message.get("outcome") if message is not None else None
        if isinstance(outcome, dict):
            outcome = outcome | {"supervised_by": "daemon", "recorded_by": "helper"}
            self._pool_finish(command, outcome, _exit_answer(outcome))
            return
        if not command.pid:
            # No supervisor ever announced itself (each does before it asks
            # the client for its go), and the client cannot give one now.
            self._pool_finish(command, _not_run(), {"op": "fallback"})
            return
        unknown = _unknown("daemon")
        said = [f"guard: {OUTCOME_UNKNOWN}"]
        self._pool_finish(command, unknown, _exit_answer(unknown), said)

    def _resumed(self, command_id: int) -> bool:
        """The client runs it under a supervisor we had not heard of: follow it.

        (Only when the launcher died right after forking that supervisor.)
        """
        with self._lock:
            command = self._inflight.get(command_id)
        if command is None or command.channel is None:
            return False
        self._drain(command.channel)
        if not command.pid or command.pidfd < 0:
            return False
        if command.timer:
            self._cancelled.add(command.timer)
            command.timer = 0
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(command.conn)
        command.state = "running"
        return True

    # -- recording (on a worker: it may wait for the session's lock) --------

    def _pool_finish(
        self,
        command: _InFlight,
        outcome: dict[str, Any],
        answer: dict[str, Any] | None,
        said: list[str] | None = None,
    ) -> None:
        """Record the finish on a worker, then answer the client and clean up."""
        self._pool.submit(lambda: self._conclude(command, outcome, answer, said or []))

    def _conclude(
        self,
        command: _InFlight,
        outcome: dict[str, Any],
        answer: dict[str, Any] | None,
        said: list[str],
    ) -> None:
        """Record the finish, answer the client with the warnings, clean up."""
        with self._lock:
            tree = self._trees.setdefault(command.prepared.workspace, TreeCache())
        warnings = [*said, *finish(command.prepared, outcome, tree)]
        if PARKED_WARNING in warnings:
            facts = command.prepared.facts
            with self._lock:
                self._parked_logs.add((command.prepared.log_dir, facts.session_id))
        if answer is not None:
            with contextlib.suppress(OSError, ProtocolError):
                send_message(command.conn, answer | {"warnings": warnings})
        command.conn.close()
        command.prepared.trail.close()  # no log stays open between records
        shutil.rmtree(command.prepared.private_tmp, ignore_errors=True)
        self._last_use = time.monotonic()

    def _retry_parked(self) -> None:
        """Now and then, write the finishes kept in guard's home for our logs."""
        now = time.monotonic()
        if not self._parked_logs or now - self._flushed_at < _FLUSH_EVERY_S:
            return
        self._flushed_at = now
        with self._lock:
            logs, self._parked_logs = self._parked_logs, set()
        self._pool.submit(lambda: self._flush(logs))

    def _flush(self, logs: set[tuple[str, str]]) -> None:
        from statetrace_guard.audit.pending import has_parked  # noqa: PLC0415 - rare
        from statetrace_guard.audit.trail import Trail, session_path  # noqa: PLC0415
        from statetrace_guard.errors import AuditError  # noqa: PLC0415

        for log_dir, session_id in logs:
            trail = Trail(Path(log_dir), session_id, lock_timeout=1.0)
            with contextlib.suppress(AuditError):
                trail.flush_parked()
            trail.close()
            if has_parked(session_path(Path(log_dir), session_id)):
                with self._lock:
                    self._parked_logs.add((log_dir, session_id))

    # -- the launcher --------------------------------------------------------

    def _ensure_launcher(self) -> None:
        """Start the launcher when there is none (main thread only)."""
        if self._launcher is not None:
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            return
        theirs.set_inheritable(True)
        argv = [sys.executable, "-m", "statetrace_guard.daemon.launcher"]
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:  # pragma: no cover - replaced by exec at once
            try:
                os.execv(sys.executable, [*argv, str(theirs.fileno())])  # noqa: S606
            finally:
                os._exit(127)
        theirs.close()
        with self._lock:
            self._launcher, self._launcher_pid = ours, pid
        self._selector.register(ours, selectors.EVENT_READ, self._from_launcher)
        self._watch_launcher(pid)

    def _watch_launcher(self, pid: int) -> None:
        """Reap the launcher when its pidfd says it ended, not by polling.

        A ``waitpid`` each loop turn hands the GIL back and forth with the
        worker judging a command: measurable on every command.
        """
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return  # no pidfds here: the loop polls instead
        self._launcher_pidfd = pidfd
        self._selector.register(pidfd, selectors.EVENT_READ, self._launcher_ended)

    def _launcher_ended(self, pidfd: int) -> None:
        self._selector.unregister(pidfd)
        os.close(pidfd)
        self._launcher_pidfd = None
        self._reap_launcher()

    def _reap_launcher(self) -> None:
        """Notice a launcher that ended; start another; settle what it held."""
        if not self._launcher_pid:
            self._ensure_launcher()
            return
        with contextlib.suppress(ChildProcessError):
            if not os.waitpid(self._launcher_pid, os.WNOHANG)[0]:
                return
        with self._lock:
            dead, self._launcher, self._launcher_pid = self._launcher, None, 0
        self._ensure_launcher()
        if dead is not None:
            self._after(_LAUNCHER_GRACE_S, lambda: self._launcher_gone(dead))

    def _launcher_gone(self, channel: socket.socket) -> None:
        """Launches the dead launcher never turned into supervisors."""
        if channel.fileno() >= 0:
            self._drain(channel)
        with self._lock:
            waiting = [
                key
                for key, command in self._inflight.items()
                if command.channel is channel and not command.pid
            ]
        for key in waiting:
            self._ask_client(key)

    def _channel_closed(self, channel: socket.socket) -> None:
        """No launcher or supervisor holds ``channel`` any more."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(channel)
        channel.close()
        with self._lock:
            if channel is self._launcher:
                self._launcher = None
            orphans = [k for k, c in self._inflight.items() if c.channel is channel]
        for key in orphans:
            self._ask_client(key)

    # -- programs the client runs itself ------------------------------------

    def _let_client_run(self, conn: socket.socket, prepared: Prepared) -> None:
        command = _InFlight(conn, prepared, None, state="client")
        try:
            send_message(conn, start_message(prepared))
        except (OSError, ProtocolError):  # gone already: the start is on disk
            self._pool_finish(command, _not_run() | {"supervised_by": "client"}, None)
            return
        command_id = next(self._ids)
        with self._lock:
            self._inflight[command_id] = command

        def watch() -> None:
            self._selector.register(
                conn,
                selectors.EVENT_READ,
                lambda _conn: self._client_reported(command_id),
            )

        self._call_soon(watch)

    def _client_reported(self, command_id: int) -> None:
        with self._lock:
            command = self._inflight.get(command_id)
        if command is None:
            return
        try:
            message = recv_message(command.conn)
        except (ProtocolError, OSError):
            message = {}
        op = message.get("op")
        if op == "signal":
            return  # relayed before the client's runner took over
        if op == "go":
            command.client_started = True
            return
        self._done(command_id)
        outcome = message.get("outcome")
        if op == "finished" and isinstance(outcome, dict):
            outcome = outcome | {"supervised_by": "client"}
        elif command.client_started:
            outcome = _unknown("client") | {"error": CLIENT_LOST, "client_lost": True}
        else:
            outcome = _not_run() | {"supervised_by": "client"}
        self._pool_finish(command, outcome, {"op": "ok"})


def _exit_answer(outcome: dict[str, Any]) -> dict[str, Any]:
    return {"op": "exit", "status": int(outcome.get("exit_status") or 0)}


def _not_run() -> dict[str, Any]:
    return {"exit_status": None, "not_run": True, "error": NOT_RUN}


def _unknown(supervised_by: str) -> dict[str, Any]:
    status = int(ExitCode.RUN_OUTCOME_UNKNOWN)
    return {
        "exit_status": status,
        "outcome_unknown": True,
        "error": OUTCOME_UNKNOWN,
        "supervised_by": supervised_by,
    }


def _fits(message: dict[str, Any]) -> bool:
    import marshal  # noqa: PLC0415 - already loaded

    return len(marshal.dumps(message)) <= MAX_PACKET


def _client_to_run_for(request: dict[str, Any], pid: int) -> PeerView | None:
    """The client, when its program may run under our supervisor; else None.

    None when the client asked to run it, its list of descriptors is not
    one (at most MAX_PASSED_FDS numbers), or its process context differs
    from ours.
    """
    numbers = request.get("fds")
    if request.get("runner") != "daemon" or not isinstance(numbers, list):
        return None
    if len(numbers) > MAX_PASSED_FDS or not all(
        isinstance(n, int) and 0 <= n < _FD_CEILING for n in numbers
    ):
        return None
    client = examine(pid)
    return None if client.differences else client


def started_message(prepared: Prepared, launcher_pid: int) -> dict[str, Any]:
    """``started``: the start is on disk; where, and who launches the program."""
    return {
        "op": "started",
        "trail": trail_wire(prepared),
        "private_tmp": prepared.private_tmp,
        "launcher": launcher_pid,
    }


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
    start = prepared.start
    return {
        "log_dir": str(prepared.trail.log_dir),
        "session_id": facts.session_id,
        "facts": plain | {"env": dict(facts.env), "extra": dict(facts.extra)},
        "start": [start.seq, start.offset] if start is not None else None,
        "events": [[name, dict(fields)] for name, fields in prepared.after_events],
    }


def _hook_answer(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to a ``guard hook`` call (judged like a command)."""
    from statetrace_guard.hooks.main import serve_hook  # noqa: PLC0415

    return serve_hook(request)


def _judge(request: dict[str, Any]) -> Assessed | dict[str, Any]:
    """Judge the command exactly as the in-process path would."""
    try:
        options = request["options"]
        invocation = resolve_invocation(
            level=options.get("level"),
            policy=_path(options.get("policy")),
            log_dir=_path(options.get("log_dir")),
            env=dict(request["env"]),
            cwd=Path(request["cwd"]),
        )
        judged = judge_command(invocation, _run_options(request, options))
    except GuardError as error:
        return _error(error.message, run_exit_code(error.exit_code), error.hint())
    except (KeyError, TypeError, ValueError) as exc:
        return _error(f"malformed request: {exc}", ExitCode.RUN_GUARD_FAILED)
    return _blocked(judged) if isinstance(judged, Blocked) else judged


def _commit(
    judged: Assessed,
    request: dict[str, Any],
    planned: Callable[[SandboxPlan, Any], None] | None = None,
) -> Prepared | dict[str, Any]:
    """Write the judged command's record (may wait for the session's lock)."""
    try:
        prepared = commit(
            judged, _run_options(request, request["options"]), planned=planned
        )
    except GuardError as error:
        return _error(error.message, run_exit_code(error.exit_code), error.hint())
    return _blocked(prepared) if isinstance(prepared, Blocked) else prepared


def _blocked(blocked: Blocked) -> dict[str, Any]:
    return {
        "op": "blocked",
        "message": blocked.message,
        "exit": int(blocked.exit_status),
        "stdout": blocked.stdout,
    }


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

    import statetrace_guard.audit.keys  # noqa: PLC0415
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
    # Never keep a workspace busy: a volume the helper was started from
    # must stay unmountable (every path it is given is absolute).
    os.chdir("/")
    warm_up()
    gc.freeze()  # long-lived: keep the collector off what never changes
    Daemon(path, idle).serve_forever()


if __name__ == "__main__":
    main()
