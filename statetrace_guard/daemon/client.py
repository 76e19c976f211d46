"""``guard run`` through the resident helper: the fast path.

Imports only what the path needs (no click, pydantic, structlog, psutil,
tree-sitter, and not even the runner or the sandbox). Returns None whenever
the in-process path must take over: options it does not parse itself (help,
errors: click words those), no daemon yet (one is started for the next
command), a stale or failing daemon.

Usually the helper runs the program, on this process's own stdin, stdout
and stderr (passed over the socket), while this process relays the signals
it gets and exits with the program's status. When this process has a
terminal or other inherited descriptors, or its context differs from the
helper's, the helper answers ``start`` and the program runs here instead,
under the plan the helper made.

What this process guarantees (issue 14):

* It decides alone whether the program starts: the supervisor waits for
  its ``go``. Before that, every wait has a deadline (the helper or its
  launcher stopped or wedged: the command runs in-process instead, and the
  start the helper wrote is finished as not run), and SIGINT, SIGTERM or
  SIGHUP ends it at once (128+N; nothing ran).
* After that, it exits with the program's status once ``command.finished``
  is on disk: written by the helper, or, when the helper is gone or stopped,
  by this process (a finish names its start: it lands once). When nobody
  can learn how the program ended, the status is 123 (outcome unknown),
  never 125 (which means that nothing ran).
"""

from __future__ import annotations

import os
import sys
import time

from statetrace_guard.daemon.protocol import (
    DAEMON_VARIABLE,
    ProtocolError,
    decode,
    recv_message,
    runtime_dir,
    send_message,
    socket_path,
)
from statetrace_guard.run_options import parse

# NOTE(speed): typing costs more to import than this whole module; the
# annotations are strings (``from __future__``), so only checkers need it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FALLBACK_VARIABLE", "IDLE_VARIABLE", "WAIT_VARIABLE", "ask", "fast_run"]

IDLE_VARIABLE = "STATETRACE_GUARD_DAEMON_IDLE"
# Seconds to wait for the helper before the program starts (default 30).
WAIT_VARIABLE = "STATETRACE_GUARD_DAEMON_WAIT"
# Set for the in-process path when the helper could not serve: the reason,
# recorded in the start's ``extra.fallback`` (never passed to the program).
FALLBACK_VARIABLE = "STATETRACE_GUARD_FALLBACK"
_MISS_WINDOW_S = 600.0
_DEFAULT_WAIT_S = 30.0
_SLICE_S = 0.25  # how often a waiting client looks whether the helper is stopped
_CONNECT_S = 2.0
_MESSAGE_S = 10.0  # the rest of a message once its first bytes came
_MAX_PASSED_FDS = 250  # the helper's limit (SCM_MAX_FD is 253)
_SIGNAL_BASE = 128  # exit status 128+N: ended by signal N (errors.py)
_OUTCOME_UNKNOWN = 123  # errors.ExitCode.RUN_OUTCOME_UNKNOWN
_FD_LIMIT = 1 << 20  # closerange's end; Linux uses close_range(2), no loop
_PREFIX = 4


def fast_run(args: list[str]) -> int | None:
    """Run ``guard run ARGS`` via the daemon; None means "do it in-process"."""
    if os.environ.get(DAEMON_VARIABLE) == "off" or sys.platform != "linux":
        return None  # the helper's peer checks need SO_PEERCRED and /proc
    parsed = parse(args)
    if parsed is None:
        return None
    options, argv = parsed
    # A session job starts in-process (statetrace_guard.background); so does
    # a command that may be a request of the guard itself (`guard fetch`,
    # `bash -c 'guard escalate ...'`): only the in-process path serves those
    # (statetrace_guard.sessions.requests). They still start the helper for
    # the commands after them.
    local = options.get("background") or _asks_guard(argv)
    sock = _connect(socket_path())
    if sock is None:
        if _wanted_again():
            _start_daemon(socket_path())
        return None
    if local:
        sock.close()
        return None
    try:
        result = _Exchange(sock, options, argv).run()
    finally:
        sock.close()
    if isinstance(result, str):
        _say(f"guard: warning: {result}; running the command in-process")
        os.environ[FALLBACK_VARIABLE] = result
        return None
    return result


_SHELL_PUNCTUATION = str.maketrans(dict.fromkeys(";|&()'\"`<>{}\n\t", " "))


_GUARD_PATHS = ("/bin/guard", "\\guard.exe", "\\guard")


def _asks_guard(argv: list[str]) -> bool:
    """Whether a word of the command (or of a script in it) is ``guard``."""
    for arg in argv:
        for word in arg.translate(_SHELL_PUNCTUATION).split():
            if word in ("guard", "guard.exe") or word.endswith(_GUARD_PATHS):
                return True
    return False


def ask(request: dict[str, Any]) -> dict[str, Any] | None:
    """One request, one reply (``guard hook``); None means "do it in-process".

    A miss starts the helper as ``fast_run`` does (from the second miss in
    the window on), so a runtime's hook calls get it from their second one.
    """
    if os.environ.get(DAEMON_VARIABLE) == "off" or sys.platform != "linux":
        return None
    sock = _connect(socket_path())
    if sock is None:
        if _wanted_again():
            _start_daemon(socket_path())
        return None
    try:
        send_message(sock, request)
        sock.settimeout(_wait_seconds())
        return recv_message(sock)
    except (ProtocolError, OSError):
        return None
    finally:
        sock.close()


def _connect(path: str) -> Any:  # noqa: ANN401 - a _socket.socket or None
    """Connect if the socket is ours and private; None otherwise."""
    import _socket  # noqa: PLC0415 - the C module: no enum/selectors import

    try:
        folder = os.stat(os.path.dirname(path))
        if folder.st_uid != os.geteuid() or folder.st_mode & 0o077:
            return None  # not a directory only we control: never trust it
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.settimeout(_CONNECT_S)  # a full backlog must not hold us
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


class _Interrupted(Exception):
    """A relayed signal arrived before the program started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Gone(Exception):
    """The connection ended (EOF) or carried garbage."""


# The phases of one command, as this process sees it.
_ASKING = "asking"  # the request is out; nothing is on disk that we know of
_LAUNCHING = "launching"  # the helper wrote the start; no "go" sent
_ABANDONED = "abandoned"  # we told the helper we will not start it
_RUNNING = "running"  # "go" sent: the program may run
_CONFIRMING = "confirming"  # we hold the outcome; the helper records it


class _Exchange:
    """One command through the helper, from request to exit status."""

    def __init__(self, sock: Any, options: dict[str, Any], argv: list[str]) -> None:  # noqa: ANN401 - _socket
        import _signal  # type: ignore[import-not-found]  # noqa: PLC0415 - C module; signal.py imports enum

        self.sock = sock
        self.options = options
        self.argv = argv
        self.signals = _signal
        # The signals the runner forwards to a program it runs itself. While
        # a message is being sent they stay blocked: a relay sent from a
        # handler in the middle of another message would corrupt both.
        self.relayed = {_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP}
        self.quiet = _Blocked(_signal, self.relayed)
        self.phase = _ASKING
        self.trail: dict[str, Any] | None = None
        self.launcher = 0
        self.helper = _peer_pid(sock)
        self.outcome: dict[str, Any] | None = None
        self.since = time.monotonic()
        self.wait_s = _wait_seconds()
        self.fds: tuple[int, ...] = ()

    def run(self) -> int | str | None:
        """The exit status; a reason to run in-process; or None (plain fallback)."""
        fds = _passable_fds()
        self.fds = fds or ()
        request = {
            "op": "run",
            "argv": self.argv,
            "options": self.options,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "pid": os.getpid(),
            "runner": "client" if fds is None else "daemon",
            "fds": list(fds or ()),
        }
        saved: dict[int, Any] = {}
        try:
            with self.quiet:
                for sig in self.relayed:
                    saved[sig] = self.signals.signal(sig, self._on_signal)
                try:
                    send_message(self.sock, request)
                except (ProtocolError, OSError):
                    return None
            return self._converse()
        except _Interrupted as stop:
            return self._interrupted(stop.signum)
        finally:
            for sig, handler in saved.items():
                self.signals.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.phase in {_ASKING, _LAUNCHING, _ABANDONED}:
            raise _Interrupted(signum)  # nothing started: stop now
        with self.quiet:
            try:
                send_message(self.sock, {"op": "signal", "signum": signum})
            except (ProtocolError, OSError):
                return

    def _interrupted(self, signum: int) -> int:
        """Asked to stop before the program started: it never will."""
        if self.phase != _ASKING:
            # Our closing the connection tells a supervisor not to start it;
            # the helper records that, unless it cannot (then we do).
            self.sock.close()
            if _state(self.helper) != "running":
                self._record_here(_not_run("the guard client was interrupted"))
        return _SIGNAL_BASE + signum

    # -- the conversation ----------------------------------------------------

    def _converse(self) -> int | str | None:
        while True:
            message = self._next()
            if isinstance(message, str):
                return self._no_answer(message)
            if message is None:
                return self._closed()
            result = self._handle(message)
            if result is not _CONTINUE:
                return result  # type: ignore[return-value]

    def _handle(self, message: dict[str, Any]) -> object:
        op = message.get("op")
        handler = _HANDLERS.get(str(op))
        if handler is None:
            return None if self.phase == _ASKING else _CONTINUE
        return handler(self, message)

    def _on_blocked(self, message: dict[str, Any]) -> object:
        if message.get("stdout"):  # the guard's own answer (session status, ...)
            sys.stdout.write(str(message["stdout"]))
            sys.stdout.flush()
        if message["message"]:
            _say(message["message"])
        return int(message["exit"])

    def _on_error(self, message: dict[str, Any]) -> object:
        _say(f"error: {message['message']}")
        if message.get("hint"):
            _say(f"hint: {message['hint']}")
        return int(message["exit"])

    def _on_fallback(self, message: dict[str, Any]) -> object:
        _say_all(message.get("warnings"))
        if self.phase == _ASKING:
            return None  # nothing was started: judge afresh in-process
        return "the resident helper could not start the program"

    def _on_started(self, message: dict[str, Any]) -> object:
        if self.phase != _ASKING:
            return _CONTINUE
        self.trail = message["trail"] | {"private_tmp": message.get("private_tmp")}
        self.launcher = int(message.get("launcher") or 0)
        self.phase = _LAUNCHING
        return _CONTINUE

    def _on_running(self, message: dict[str, Any]) -> object:
        if self.phase != _LAUNCHING:
            return _CONTINUE  # abandoned: this supervisor gets no "go"
        with self.quiet:
            # Our descriptors go to the supervisor with the word to start.
            send_message(self.sock, {"op": "go"}, self.fds)
            self.phase = _RUNNING
        _say_all(message.get("warnings"))
        return _CONTINUE

    def _on_outcome(self, message: dict[str, Any]) -> object:
        if self.phase == _RUNNING:
            self.outcome = dict(message["outcome"])
            self.phase = _CONFIRMING
        return _CONTINUE

    def _on_exit(self, message: dict[str, Any]) -> object:
        _say_all(message.get("warnings"))
        return int(message["status"])

    def _on_lost(self, _message: dict[str, Any]) -> object:
        """The helper lost the supervisor: tell it what we know."""
        if self.phase == _LAUNCHING:
            answer: dict[str, Any] = {"op": "finished", "not_run": True}
            self.phase = _ABANDONED
        elif self.phase == _CONFIRMING:
            answer = {"op": "finished", "outcome": self.outcome}
        else:
            answer = {"op": "finished", "outcome": None, "running": True}
        with self.quiet:
            send_message(self.sock, answer)
        return _CONTINUE

    def _on_start(self, message: dict[str, Any]) -> object:
        if self.phase != _ASKING:
            return _CONTINUE
        _say_all(message.get("warnings"))
        self.trail = message["trail"] | {"private_tmp": message["spec"]["private_tmp"]}
        return self._run_here(message)

    # -- waiting -------------------------------------------------------------

    def _next(self) -> dict[str, Any] | str | None:
        """The next message; None at EOF; a reason when we stop waiting."""
        if self.phase == _RUNNING:
            found: dict[str, Any] | None = _read(self.sock, None)  # no deadline now
            return found
        watch = [("the resident helper", self.helper)]
        if self.phase == _LAUNCHING:
            watch.append(("its launcher", self.launcher))
        end = time.monotonic() + self.wait_s
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return f"the resident helper did not answer within {self.wait_s:g}s"
            message = _read(self.sock, min(_SLICE_S, remaining))
            if message is not _QUIET:
                answer: dict[str, Any] | None = message
                return answer
            for name, pid in watch:
                state = _state(pid)
                if state != "running":
                    return f"{name} (pid {pid}) is {state}"

    def _no_answer(self, reason: str) -> int | str | None:
        """Stop waiting: before the start, run in-process; after, record here."""
        if self.phase == _ASKING:
            return reason
        if self.phase in {_LAUNCHING, _ABANDONED}:
            self.sock.close()  # a supervisor still to come runs nothing
            self._record_here(_not_run(reason))
            return reason
        return self._confirm_here()

    def _closed(self) -> int | str | None:
        """The helper (and any supervisor) closed the connection."""
        if self.phase == _ASKING:
            # It may have written the start before it ended: the in-process
            # run finishes that one as not run (it knows it by our pid).
            return "the resident helper ended before it answered"
        if self.phase in {_LAUNCHING, _ABANDONED}:
            self._record_here(_not_run("the resident helper ended before the start"))
            return "the resident helper ended before the program started"
        if self.phase == _CONFIRMING:
            return self._confirm_here()
        message = "guard: the helper and the supervisor running the program both ended"
        _say(message + " (outcome unknown: look before running it again)")
        elapsed_ms = (time.monotonic() - self.since) * 1000
        self._record_here(
            {
                "exit_status": _OUTCOME_UNKNOWN,
                "outcome_unknown": True,
                "duration_ms": elapsed_ms,
                "error": message,
                "supervised_by": "daemon",
            }
        )
        return _OUTCOME_UNKNOWN

    def _confirm_here(self) -> int:
        """We hold the outcome and the helper cannot record it: we do."""
        outcome = self.outcome or {}
        self._record_here(outcome | {"supervised_by": "daemon"})
        return int(outcome.get("exit_status") or 0)

    # -- the program in this process -----------------------------------------

    def _run_here(self, reply: dict[str, Any]) -> int:
        from statetrace_guard.daemon.wire import (  # noqa: PLC0415 - this path only
            backend_from_wire,
            plan_from_wire,
            run_spec_from_wire,
        )
        from statetrace_guard.runner import run  # noqa: PLC0415

        with self.quiet:
            send_message(self.sock, {"op": "go"})
            self.phase = _RUNNING
        plan = reply["plan"]
        outcome = run(
            run_spec_from_wire(
                reply["spec"], plan_from_wire(plan), backend_from_wire(plan)
            )
        )
        record = outcome.as_record()
        record["exit_code"] = record["exit_status"]  # plain int: ExitCode won't marshal
        self.outcome = record | {"supervised_by": "client"}
        self.phase = _CONFIRMING
        try:
            with self.quiet:
                send_message(self.sock, {"op": "finished", "outcome": record})
        except (ProtocolError, OSError):
            self._record_here(self.outcome)
            return int(outcome.exit_status)
        answer = self._next()
        if isinstance(answer, dict) and answer.get("op") == "ok":
            _say_all(answer.get("warnings"))
        else:
            self._record_here(self.outcome)
        return int(outcome.exit_status)

    def _record_here(self, outcome: dict[str, Any]) -> None:
        """Write ``command.finished`` from this process (once: it names its start)."""
        if self.trail is None:
            return
        for line in _finish_here(self.trail, outcome):
            _say(line)


_CONTINUE = object()
_QUIET = object()
_HANDLERS: dict[str, Any] = {
    "blocked": _Exchange._on_blocked,  # noqa: SLF001 - the class's own table
    "error": _Exchange._on_error,  # noqa: SLF001
    "fallback": _Exchange._on_fallback,  # noqa: SLF001
    "started": _Exchange._on_started,  # noqa: SLF001
    "running": _Exchange._on_running,  # noqa: SLF001
    "outcome": _Exchange._on_outcome,  # noqa: SLF001
    "exit": _Exchange._on_exit,  # noqa: SLF001
    "lost": _Exchange._on_lost,  # noqa: SLF001
    "start": _Exchange._on_start,  # noqa: SLF001
}


def _read(sock: Any, wait: float | None) -> Any:  # noqa: ANN401 - a message, None (EOF) or _QUIET
    """One message; None at EOF; ``_QUIET`` when nothing began within ``wait``.

    Nothing is consumed unless a message has begun, so a quiet slice can be
    followed by another.
    """
    sock.settimeout(wait)
    try:
        first = sock.recv(_PREFIX)
    except TimeoutError:
        return _QUIET
    except OSError:
        return None
    if not first:
        return None
    sock.settimeout(_MESSAGE_S)
    try:
        head = first + _exact(sock, _PREFIX - len(first))
        return decode(_exact(sock, int.from_bytes(head, "big")))
    except (OSError, ProtocolError):
        return None


def _exact(sock: Any, size: int) -> bytes:  # noqa: ANN401 - a _socket
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 16))
        if not chunk:
            raise ProtocolError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _peer_pid(sock: Any) -> int:  # noqa: ANN401 - a _socket
    """The helper's pid (SO_PEERCRED of the listening socket; Linux)."""
    import _socket  # noqa: PLC0415 - loaded already

    try:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        return 0
    return int.from_bytes(raw[:4], sys.byteorder, signed=True)


def _state(pid: int) -> str:
    """``running``, ``stopped`` or ``gone``, as /proc says (unknown: running)."""
    if pid <= 0:
        return "running"
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1][1:2]
    except FileNotFoundError:
        return "gone"
    except (OSError, IndexError):
        return "running"
    if state in {b"T", b"t"}:
        return "stopped"
    if state in {b"Z", b"X"}:
        return "gone"
    return "running"


def _wait_seconds() -> float:
    try:
        value = float(os.environ.get(WAIT_VARIABLE, _DEFAULT_WAIT_S))
    except ValueError:
        return _DEFAULT_WAIT_S
    return value if value > 0 else _DEFAULT_WAIT_S


def _not_run(reason: str) -> dict[str, Any]:
    return {"exit_status": None, "not_run": True, "error": f"nothing ran: {reason}"}


class _Blocked:
    """Block some signals for a ``with`` block (they are delivered after)."""

    def __init__(self, module: Any, signals: set[int]) -> None:  # noqa: ANN401 - _signal
        self._module = module
        self._signals = signals
        self._old: Any = None

    def __enter__(self) -> None:
        self._old = self._module.pthread_sigmask(self._module.SIG_BLOCK, self._signals)

    def __exit__(self, *_exc: object) -> None:
        self._module.pthread_sigmask(self._module.SIG_SETMASK, self._old)


def _passable_fds() -> tuple[int, ...] | None:
    """What the program would inherit from here, for the helper; or None.

    None (the program runs here) when stdio is a terminal (job control and
    ``/dev/tty`` need the agent's session), when there are more descriptors
    than one message carries, or where ``/proc`` cannot say.
    """
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return None
        except OSError:
            continue  # closed: the program gets it closed too
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    passed = []
    for name in names:
        try:
            if os.get_inheritable(int(name)):
                passed.append(int(name))
        except OSError:
            continue  # the descriptor listdir itself used
    return tuple(sorted(passed)) if len(passed) <= _MAX_PASSED_FDS else None


def _finish_here(trail: dict[str, Any], outcome: dict[str, Any]) -> list[str]:
    """Write ``command.finished`` here (the helper cannot); return warnings."""
    import shutil  # noqa: PLC0415 - rare path
    from pathlib import Path  # noqa: PLC0415

    from statetrace_guard.audit.trail import CommandFacts, StartMark, Trail  # noqa: PLC0415
    from statetrace_guard.errors import AuditError  # noqa: PLC0415
    from statetrace_guard.execute import PARKED_WARNING  # noqa: PLC0415

    facts: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in trail["facts"].items()
    }
    record = dict(outcome)
    record.setdefault("exit_code", record.get("exit_status"))
    record.setdefault("duration_ms", 0.0)
    record["recorded_by"] = "client"
    start = StartMark(*trail["start"]) if trail.get("start") else None
    events = [(name, fields) for name, fields in trail.get("events") or ()]
    warnings: list[str] = []
    try:
        result = Trail(Path(trail["log_dir"]), trail["session_id"]).finished(
            CommandFacts(**facts), record, start, events
        )
    except AuditError as error:
        warnings.append(
            f"guard: warning: command.finished not recorded: {error.message}"
        )
    else:
        if result == "parked":
            warnings.append(PARKED_WARNING)
    if trail.get("private_tmp"):
        shutil.rmtree(trail["private_tmp"], ignore_errors=True)
    return warnings


def _say_all(lines: object) -> None:
    if isinstance(lines, list):
        for line in lines:
            _say(str(line))


def _wanted_again() -> bool:
    """True when an earlier run also found no daemon, within the last minutes.

    A one-off ``guard run`` (a script, a test with its own guard home) should
    not leave a helper behind; an agent's session, which runs command after
    command, gets one from its second command on. The marker is the time of
    the last miss, kept in the private runtime directory.
    """
    marker = os.path.join(runtime_dir(), "missed")
    try:
        recent = time.time() - os.stat(marker).st_mtime < _MISS_WINDOW_S
    except OSError:
        recent = False
    try:
        os.makedirs(runtime_dir(), mode=0o700, exist_ok=True)
        with open(marker, "w"):
            pass
    except OSError:
        return False
    return recent


def _start_daemon(path: str) -> None:
    """Start a detached daemon for the next command (double fork + setsid).

    It must not be our child: the runner ends a program's leftovers, and
    a daemon started by this guard would count as one. It works from ``/``
    (it must not keep a workspace's volume busy).
    """
    os.makedirs(runtime_dir(), mode=0o700, exist_ok=True)
    idle = os.environ.get(IDLE_VARIABLE, "900")
    argv = [sys.executable, "-m", "statetrace_guard.daemon.server", path, idle]
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork() == 0:
            os.chdir("/")
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            # Nothing of this client's may live on in the helper: an agent
            # waits for EOF on pipes it handed down (fd 3+ too).
            os.closerange(3, _FD_LIMIT)
            os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module
    finally:
        os._exit(0)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
