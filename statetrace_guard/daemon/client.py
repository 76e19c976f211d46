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
under the plan the helper made. Either way, if the helper's side is gone
before the outcome is recorded, the record is written from here.
"""

from __future__ import annotations

import os
import sys
import time

from statetrace_guard.daemon.protocol import (
    DAEMON_VARIABLE,
    ProtocolError,
    recv_message,
    runtime_dir,
    send_message,
    socket_path,
)

# NOTE(speed): typing costs more to import than this whole module; the
# annotations are strings (``from __future__``), so only checkers need it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["IDLE_VARIABLE", "ask", "fast_run", "parse_run_args"]

IDLE_VARIABLE = "STATETRACE_GUARD_DAEMON_IDLE"
_MISS_WINDOW_S = 600.0
_LEVELS = {"l0": "L0", "l1": "L1", "l2": "L2", "l3": "L3"}
_VALUE_OPTIONS = {
    "--level": "level",
    "--policy": "policy",
    "--session": "session",
    "--task": "task",
    "--log-dir": "log_dir",
    "--timeout": "timeout",
    "--grace": "grace",
    "--max-memory": "max_memory",
    "--max-processes": "max_processes",
}
_FLAG_OPTIONS = {"--durable": "durable", "--require-sandbox": "require_sandbox"}
_MAX_PASSED_FDS = 250  # the helper's limit (SCM_MAX_FD is 253)
_SIGNAL_BASE = 128  # exit status 128+N: ended by signal N (errors.py)
_FD_LIMIT = 1 << 20  # closerange's end; Linux uses close_range(2), no loop


def fast_run(args: list[str]) -> int | None:
    """Run ``guard run ARGS`` via the daemon; None means "do it in-process"."""
    if os.environ.get(DAEMON_VARIABLE) == "off" or sys.platform != "linux":
        return None  # the helper's peer checks need SO_PEERCRED and /proc
    parsed = parse_run_args(args)
    if parsed is None:
        return None
    options, argv = parsed
    if len(argv) > 1 and argv[1] == "fetch":
        return None  # `guard run -- guard fetch`: the guard downloads in-process
    sock = _connect(socket_path())
    if sock is None:
        if _wanted_again():
            _start_daemon(socket_path())
        return None
    try:
        return _exchange(sock, options, argv)
    finally:
        sock.close()


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
        return recv_message(sock)
    except (ProtocolError, OSError):
        return None
    finally:
        sock.close()


def parse_run_args(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """Parse ``guard run`` options as click would; None for anything unusual."""
    options: dict[str, Any] = {}
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            index += 1
            break
        if not word.startswith("-"):
            break
        name, has_value, value = word.partition("=")
        if name in _FLAG_OPTIONS and not has_value:
            options[_FLAG_OPTIONS[name]] = True
        elif name in _VALUE_OPTIONS:
            if not has_value:
                index += 1
                if index >= len(args):
                    return None
                value = args[index]
            options[_VALUE_OPTIONS[name]] = value
        else:
            return None
        index += 1
    argv = args[index:]
    if not argv or not _normalise(options):
        return None
    return options, argv


def _convert(options: dict[str, Any]) -> bool:
    """Convert values to their types in place; False when one does not fit."""
    try:
        if "level" in options:
            options["level"] = _LEVELS[options["level"].lower()]
        for name, kind in (("timeout", float), ("grace", float)):
            if name in options:
                options[name] = kind(options[name])
        for name in ("max_memory", "max_processes"):
            if name in options:
                options[name] = int(options[name])
    except (KeyError, ValueError):
        return False
    return True


def _normalise(options: dict[str, Any]) -> bool:
    """Check and convert values in place; False sends the command to click."""
    if not _convert(options):
        return False
    if options.get("timeout", 1.0) <= 0 or options.get("grace", 0.0) < 0:
        return False
    if min(options.get("max_memory", 1), options.get("max_processes", 1)) < 1:
        return False
    for name in ("policy", "log_dir"):
        if name in options:
            options[name] = os.path.abspath(options[name])
    return True


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
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _exchange(sock: Any, options: dict[str, Any], argv: list[str]) -> int | None:  # noqa: ANN401
    fds = _passable_fds()
    request = {
        "op": "run",
        "argv": argv,
        "options": options,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "pid": os.getpid(),
        "runner": "client" if fds is None else "daemon",
        "fds": list(fds or ()),
    }
    import _signal  # type: ignore[import-not-found]  # noqa: PLC0415 - C module; signal.py imports enum

    received: list[int] = []
    # The signals the runner forwards to a program it runs itself. While a
    # message is being sent they stay blocked: a relay sent from a handler
    # in the middle of another message would corrupt both.
    relayed = {_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP}

    def relay(signum: int, _frame: object) -> None:
        received.append(signum)
        with _Blocked(_signal, relayed):
            try:
                send_message(sock, {"op": "signal", "signum": signum})
            except (ProtocolError, OSError):
                return

    with _Blocked(_signal, relayed):
        saved = {sig: _signal.signal(sig, relay) for sig in relayed}
        try:
            send_message(sock, request, fds or ())
        except (ProtocolError, OSError):
            sent = False
        else:
            sent = True
    try:
        status = _await_reply(sock, _Blocked(_signal, relayed)) if sent else None
    finally:
        for sig, handler in saved.items():
            _signal.signal(sig, handler)
    if status is None and received:
        # Asked to stop before anything started: the in-process path must
        # not run the command now. Exit as the signal would have ended us.
        return _SIGNAL_BASE + received[0]
    return status


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


def _await_reply(sock: Any, quiet: _Blocked) -> int | None:  # noqa: ANN401
    """Wait for the helper's answer and, when it runs the program, its end."""
    running: dict[str, Any] | None = None
    while True:
        try:
            reply = recv_message(sock)
        except (ProtocolError, OSError):
            if running is None:
                return None  # nothing ran: the in-process path judges afresh
            return _supervisor_lost(running)
        op = reply.get("op")
        if op == "running":
            running = reply | {"since": time.monotonic()}
            _say_all(reply.get("warnings"))
        elif op == "exit":
            _say_all(reply.get("warnings"))
            return int(reply["status"])
        elif op == "outcome" and running is not None:
            return _recorded_here(running, reply["outcome"])
        elif running is None:
            return _answered(sock, reply, quiet)


def _recorded_here(running: dict[str, Any], outcome: dict[str, Any]) -> int:
    """The helper died; its supervisor sent the outcome here to record."""
    status = int(outcome["exit_status"])
    record = outcome | {"exit_code": status, "supervised_by": "daemon"}
    _finish_here(running["trail"], record, running["private_tmp"])
    return status


def _supervisor_lost(running: dict[str, Any]) -> int:
    """The helper and the supervisor are both gone: record that here."""
    message = "guard: the helper running the program ended before it did"
    _say(message)
    elapsed_ms = (time.monotonic() - running["since"]) * 1000
    outcome = {"exit_status": 125, "exit_code": 125, "duration_ms": elapsed_ms}
    _finish_here(running["trail"], outcome | {"error": message}, running["private_tmp"])
    return 125


def _say_all(lines: object) -> None:
    if isinstance(lines, list):
        for line in lines:
            _say(str(line))


def _answered(sock: Any, reply: dict[str, Any], quiet: _Blocked) -> int | None:  # noqa: ANN401
    op = reply.get("op")
    if op == "blocked":
        if reply.get("stdout"):  # the guard's own answer (session status, ...)
            sys.stdout.write(str(reply["stdout"]))
            sys.stdout.flush()
        if reply["message"]:
            _say(reply["message"])
        return int(reply["exit"])
    if op == "error":
        _say(f"error: {reply['message']}")
        if reply.get("hint"):
            _say(f"hint: {reply['hint']}")
        return int(reply["exit"])
    if op != "start":
        return None
    _say_all(reply.get("warnings"))
    return _run_started(sock, reply, quiet)


def _run_started(sock: Any, reply: dict[str, Any], quiet: _Blocked) -> int:  # noqa: ANN401
    from statetrace_guard.daemon.wire import (  # noqa: PLC0415 - this path only
        backend_from_wire,
        plan_from_wire,
        run_spec_from_wire,
    )
    from statetrace_guard.runner import run  # noqa: PLC0415

    spec = reply["spec"]
    plan = reply["plan"]
    outcome = run(
        run_spec_from_wire(spec, plan_from_wire(plan), backend_from_wire(plan))
    )
    record = outcome.as_record()
    record["exit_code"] = record["exit_status"]  # plain int: ExitCode won't marshal
    try:
        with quiet:
            send_message(sock, {"op": "finished", "outcome": record})
        _say_all(recv_message(sock).get("warnings"))
    except (ProtocolError, OSError):
        _finish_here(
            reply["trail"], record | {"supervised_by": "client"}, spec["private_tmp"]
        )
    return int(outcome.exit_status)


def _finish_here(
    trail: dict[str, Any], record: dict[str, Any], private_tmp: str
) -> None:
    """The helper's side died mid-command: write ``command.finished`` here."""
    import shutil  # noqa: PLC0415 - rare path

    from statetrace_guard.audit.trail import CommandFacts, Trail  # noqa: PLC0415
    from statetrace_guard.errors import AuditError  # noqa: PLC0415

    facts: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in trail["facts"].items()
    }
    from pathlib import Path  # noqa: PLC0415 - rare path

    try:
        Trail(Path(trail["log_dir"]), trail["session_id"]).finished(
            CommandFacts(**facts), record | {"recorded_by": "client"}
        )
    except AuditError as error:
        _say(f"guard: warning: command.finished not recorded: {error.message}")
    shutil.rmtree(private_tmp, ignore_errors=True)


def _wanted_again() -> bool:
    """True when an earlier run also found no daemon, within the last minutes.

    A one-off ``guard run`` (a script, a test with its own guard home) should
    not leave a helper behind; an agent's session, which runs command after
    command, gets one from its second command on. The marker is the time of
    the last miss, kept in the private runtime directory.
    """
    import time  # noqa: PLC0415 - only on a miss

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
    a daemon started by this guard would count as one.
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
