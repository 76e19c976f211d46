"""Run one program under its sandbox plan and supervise its whole tree.

The fast path imports nothing heavy. Where the sandbox gives the program a
PID namespace (Linux), the supervisor forks the namespace's init
(:mod:`statetrace_guard.sandbox.pidinit`; the resident helper's supervisors
fork it ahead, ``init_ahead``), which enters the namespaces and starts the
program; otherwise the program is forked directly. Either way the program
is restricted in order (session or process group and terminal, working
directory resolved in its own mount view, rlimits, Landlock, capabilities,
seccomp) and exec'd; under init without a terminal or a memory limit, init
takes those restrictions itself and starts the program with ``posix_spawn``
(see ``_spawned``). Exec and setup failures come back through a
close-on-exec pipe. The supervisor waits on init's status pipe (or on a
pidfd), so a program that exits at once is reaped at once. Only a program
still running after the first sampling interval, or one that leaves
descendants behind, brings in psutil (:mod:`statetrace_guard.supervise`).

Without a terminal the program starts a new session (no controlling
terminal: nothing to inject keystrokes into); with one it keeps job control
and the seccomp filter denies TIOCSTI.

Exit status (issue 2): the child's own status; 128+N when killed by signal N;
124 on timeout; 127 when the program cannot be executed (not found, not
executable); 125 when the sandbox or a limit cannot be set up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import resource
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from statetrace_guard.errors import ExitCode, GuardError
from statetrace_guard.reaped import Reaped

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from socket import socket
    from types import FrameType
    from typing import Protocol

    from statetrace_guard.sandbox.base import ChildSetup, SandboxBackend, SandboxPlan
    from statetrace_guard.sandbox.pidinit import InitTree
    from statetrace_guard.sandbox.procevents import TreeWatch
    from statetrace_guard.supervise import TreeTracker
    from statetrace_guard.testpicker import TestPicker

    class RunControl(Protocol):
        """A channel from whoever asked for the run (the resident helper's client)."""

        def fileno(self) -> int:
            """The descriptor to wait on beside the program."""
            ...

        def read(self) -> int | None:
            """A signal to forward to the program, or None.

            Raises:
                EOFError: the other end is gone.
            """
            ...


__all__ = ["Executable", "InitAhead", "RunOutcome", "RunSpec", "init_ahead", "run"]

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Python ignores these for itself; an ignored disposition survives exec, so
# without the reset `seq 1 1000000 | head -1` would see EPIPE, not SIGPIPE.
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)
SAMPLE_INTERVAL_S = 0.05
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_NOT_FOUND_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EACCES)
_KIND_SETUP = "setup"
_KIND_EXEC = "exec"


@dataclass(frozen=True)
class Executable:
    """One program started somewhere in the tree."""

    name: str
    path: str


@dataclass(frozen=True)
class RunSpec:
    """What to run and how.

    Attributes:
        argv: the program and its arguments, run as given (no shell).
        cwd: the working directory.
        env: the complete environment (``PATH`` is used for the lookup).
        timeout: seconds before the whole tree is ended (exit 124).
        grace: seconds between SIGTERM and SIGKILL when ending the tree.
        max_memory: bytes of address space per process (RLIMIT_AS); the tree
            is also ended when its sampled RSS exceeds this.
        max_processes: live processes in the tree (sampled; RLIMIT_NPROC is
            per user, and root ignores it, so it is not used).
        plan: the sandbox plan to enforce; ``None`` runs unrestricted.
        backend: the backend that made ``plan``.
        allow_background: leave descendants running after the program exits.
        control: signals from a client that is not the guard's own parent
            (the resident helper runs programs for ``guard run``); when it
            hangs up, the program gets SIGHUP and, after ``grace``, SIGKILL.
        fds: the descriptors the program gets, by number, in place of the
            guard's own inheritable ones (the client's, sent to the helper);
            None passes the guard's own.
        helpers: pids of the guard's own children that run beside the
            program (the L3 egress proxy): never counted in its tree, never
            ended with it.
        watch_tests: for a command with a test part, the test programs whose
            own exit status to learn from the kernel's process events (a
            pipeline's status may be another program's); None watches nothing.
    """

    argv: Sequence[str]
    cwd: str
    env: Mapping[str, str]
    timeout: float | None = None
    grace: float = 5.0
    max_memory: int | None = None
    max_processes: int | None = None
    plan: SandboxPlan | None = None
    backend: SandboxBackend | None = None
    allow_background: bool = False
    control: RunControl | None = None
    fds: Mapping[int, int] | None = None
    helpers: tuple[int, ...] = ()
    watch_tests: TestPicker | None = None


@dataclass(frozen=True)
class RunOutcome:
    """What happened; ``exit_status`` is what ``guard run`` exits with."""

    exit_status: int
    returncode: int | None = None
    signal: int | None = None
    timed_out: bool = False
    not_found: bool = False
    duration_ms: float = 0.0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    peak_rss_bytes: int = 0
    processes: int = 0
    executables: tuple[Executable, ...] = ()
    leftover: tuple[dict[str, object], ...] = ()
    limit_hit: str | None = None
    error: str | None = None
    test_programs: dict[str, object] | None = None

    def as_record(self) -> dict[str, object]:
        """Return the JSON-ready fields of ``command.finished``.

        ``test_programs`` is there only when the tests were watched.
        """
        record: dict[str, object] = {
            "exit_status": int(self.exit_status),
            "returncode": self.returncode,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "not_found": self.not_found,
            "duration_ms": round(self.duration_ms, 3),
            "cpu_user_s": round(self.cpu_user_s, 6),
            "cpu_system_s": round(self.cpu_system_s, 6),
            "peak_rss_bytes": self.peak_rss_bytes,
            "processes": self.processes,
            "executables": [{"name": e.name, "path": e.path} for e in self.executables],
            "leftover": [dict(x) for x in self.leftover],
            "limit_hit": self.limit_hit,
            "error": self.error,
        }
        if self.test_programs is not None:
            record["test_programs"] = self.test_programs
        return record


@dataclass
class InitAhead:
    """An init forked before its command (Linux, PID namespace), waiting for it.

    ``release`` gives init its command; ``run`` calls it once it watches the
    tree (see ``init_ahead``).
    """

    tree: InitTree
    report: int  # the read end of init's report pipe
    release: Callable[[], None] = lambda: None
    cancel: Callable[[], None] = lambda: None  # init will get no command

    def discard(self) -> None:
        """Not used: init is told nothing and exits; reap it."""
        self.cancel()
        with contextlib.suppress(OSError):
            os.close(self.report)
        self.tree.collect(end=False)


@dataclass
class _Run:
    """Mutable state of one run, shared with the signal handlers."""

    spec: RunSpec
    pid: int = 0
    started: float = 0.0
    wall_started: float = 0.0
    deadline: float | None = None
    kill_at: float | None = None
    timed_out: bool = False
    limit_hit: str | None = None
    start_ticks: int | None = None
    tracker: TreeTracker | None = None
    status: int = 0
    usage: Any = None
    leftover: list[dict[str, object]] = field(default_factory=list)
    tree: InitTree | None = None  # the PID namespace's init, when there is one
    error: str | None = None
    reaped: Reaped = field(default_factory=Reaped)
    watch: TreeWatch | None = None  # the test programs' own statuses
    events: socket | None = None  # the process events it reads
    unwatched: str | None = None  # why the tests could not be watched


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        from statetrace_guard.sandbox.landlock import libc  # noqa: PLC0415 - Linux only

        libc().prctl(option, value, 0, 0, 0)


def _set_subreaper() -> None:
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _which(program: str, env: Mapping[str, str]) -> str:
    """Resolve ``program`` like execvp (for the record only)."""
    if "/" in program:
        return os.path.abspath(program)  # noqa: PTH100 - no pathlib on the hot path
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", program)  # noqa: PTH118
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):  # noqa: PTH112
            return candidate
    return program


def _foreground_tty() -> int | None:
    """Return fd 0 when it is a terminal and the guard owns its foreground."""
    try:
        if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
            return 0
    except OSError:
        return None
    return None


def _give_tty(fd: int | None, pgid: int) -> None:
    if fd is None:
        return
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgid)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, old)


def _set_limits(spec: RunSpec) -> None:
    if spec.max_memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (spec.max_memory, spec.max_memory))


def _child(
    spec: RunSpec, setup: ChildSetup | None, report: int, tty: int | None
) -> None:
    """Between fork and exec without a PID namespace; never returns."""
    kind = _KIND_SETUP
    try:
        _reset_signals()
        _session(tty)
        # Dies with the supervisor (issue 14.5); without a PID namespace,
        # what it forks itself can still outlive it (guard doctor says so).
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if setup is not None:
            setup.enter()
        report = _restricted(spec, setup, report)
        kind = _KIND_EXEC
        os.execvpe(spec.argv[0], list(spec.argv), dict(spec.env))  # noqa: S606
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        _report_failure(report, kind, exc)
    finally:
        os._exit(ExitCode.RUN_GUARD_FAILED)


def _drop_old_view_descriptors(report: int) -> None:
    """Directories inherited from before the mount view would lead back out of it."""
    from statetrace_guard.sandbox.mounts import (  # noqa: PLC0415 - Linux only, loaded
        drop_old_view_descriptors,
    )

    drop_old_view_descriptors(report)


def _program(
    spec: RunSpec, setup: ChildSetup, report: int, tty: int | None
) -> NoReturn:
    """The program, forked by its PID namespace's init; never returns."""
    kind = _KIND_SETUP
    try:
        signal.set_wakeup_fd(-1)
        _reset_signals()
        _session(tty)
        report = _restricted(spec, setup, report)
        kind = _KIND_EXEC
        os.execvpe(spec.argv[0], list(spec.argv), dict(spec.env))  # noqa: S606
    except BaseException as exc:  # noqa: BLE001 - everything must reach the runner
        _report_failure(report, kind, exc)
    finally:
        os._exit(ExitCode.RUN_GUARD_FAILED)


def _spawnable(spec: RunSpec, tty: int | None) -> bool:
    """Whether init may start the program with ``posix_spawn`` (see ``_spawned``).

    Not with a terminal (the program's process group must own it before it
    runs) and not with a memory limit (an address-space limit on init
    itself could fail init's own allocations later).
    """
    return tty is None and spec.max_memory is None


def _spawned(spec: RunSpec, setup: ChildSetup, report: int) -> int:
    """In init: restrict init as the program, then spawn the program; its pid.

    The same steps as ``_program`` (working directory in the new view,
    Landlock, no capabilities, seccomp, descriptors placed and the old
    view's dropped), taken by init for itself: the program inherits all of
    them through ``posix_spawn``, which also gives it a new session and the
    default signal dispositions. Failures are reported as ``_program``
    reports them; init then exits and the kernel ends the namespace.
    """
    kind = _KIND_SETUP
    try:
        report = _restricted(spec, setup, report)
        kind = _KIND_EXEC
        return _spawnvpe(spec.argv, spec.env)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the runner
        _report_failure(report, kind, exc)
        os._exit(ExitCode.RUN_GUARD_FAILED)


def _spawnvpe(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """``os.execvpe``'s search (the program's own PATH) with ``posix_spawn``.

    Raises:
        OSError: as ``os.execvpe`` raises it: the first error that is not
            "no such file" along PATH, else the last one.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    options: dict[str, Any] = {
        "setsid": True,
        "setsigdef": (*FORWARDED_SIGNALS, *_RESTORED_SIGNALS, signal.SIGCHLD),
        "setsigmask": blocked - set(FORWARDED_SIGNALS),
    }
    program, args, environment = argv[0], list(argv), dict(env)
    if os.path.dirname(program):  # noqa: PTH120 - hot path
        return os.posix_spawn(program, args, environment, **options)
    first: OSError | None = None
    last: OSError = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    for directory in os.get_exec_path(environment):
        path = os.path.join(directory, program)  # noqa: PTH118 - hot path
        # Each attempt costs a clone: skip names that are not there (what
        # execve would fail with ENOENT or ENOTDIR) with a stat first.
        try:
            os.stat(path)  # noqa: PTH116 - hot path
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
            continue
        except OSError:
            pass  # let the spawn say what is wrong with it
        try:
            return os.posix_spawn(path, args, environment, **options)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
        except OSError as exc:
            last = exc
            first = first or exc
    raise first or last


def _reset_signals() -> None:
    for sig in (*FORWARDED_SIGNALS, *_RESTORED_SIGNALS, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)


def _session(tty: int | None) -> None:
    """Own process group in the terminal's foreground, else a new session."""
    if tty is None:
        os.setsid()
    else:
        os.setpgid(0, 0)
        _give_tty(tty, os.getpid())


def _restricted(spec: RunSpec, setup: ChildSetup | None, report: int) -> int:
    """Working directory (in the new mount view), limits, sandbox, descriptors.

    Returns the report pipe's descriptor (placing descriptors may move it).
    """
    os.chdir(spec.cwd)
    _set_limits(spec)
    if setup is not None:
        setup.restrict()
    if spec.fds is not None:
        report = _place_fds(spec.fds, report)
    if spec.plan is not None and spec.plan.details.get("protect") == "mount":
        _drop_old_view_descriptors(report)
    return report


def _report_failure(report: int, kind: str, exc: BaseException) -> None:
    code = getattr(exc, "errno", None) or 0
    with contextlib.suppress(OSError):
        os.write(report, f"{kind}:{code}:{exc}".encode(errors="replace"))


def _place_fds(fds: Mapping[int, int], report: int) -> int:
    """Give the program exactly ``fds`` (number -> descriptor here).

    Everything is first moved above the highest number wanted, so that no
    placement overwrites a descriptor still to be placed or the report pipe
    (returned at its new number). Stdio not in ``fds`` is closed: the client
    had it closed.
    """
    floor = max([*fds, 2]) + 1
    moved = {
        number: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
        for number, fd in fds.items()
    }
    report = fcntl.fcntl(report, fcntl.F_DUPFD_CLOEXEC, floor)
    for number, fd in moved.items():
        os.dup2(fd, number)  # inheritable, unlike ``fd``
    for number in (0, 1, 2):
        if number not in fds:
            with contextlib.suppress(OSError):
                os.close(number)
    return report


def _read_report(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _failure(state: _Run, report: bytes) -> RunOutcome:
    """Turn a child's pipe report into the 127 / 125 outcome."""
    if state.tree is not None:
        state.tree.collect(end=True)
    else:
        os.waitpid(state.pid, 0)
    kind, _, rest = report.decode(errors="replace").partition(":")
    code_text, _, message = rest.partition(":")
    code = int(code_text) if code_text.isdigit() else 0
    duration = (time.monotonic() - state.started) * 1000
    if kind == _KIND_EXEC:
        return RunOutcome(
            exit_status=ExitCode.RUN_NOT_FOUND,
            not_found=code in _NOT_FOUND_ERRNOS,
            duration_ms=duration,
            error=f"cannot execute {state.spec.argv[0]!r}: {message}",
        )
    return RunOutcome(
        exit_status=ExitCode.RUN_GUARD_FAILED,
        duration_ms=duration,
        error=f"sandbox or limit setup failed: {message}",
    )


def _forwarder(state: _Run) -> Callable[[int, FrameType | None], None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        if state.tree is not None:
            state.tree.signal(signum)  # init relays it to the program's group
        elif state.pid > 0:
            try:
                os.killpg(state.pid, signum)
            except ProcessLookupError:  # not yet its own group (or session)
                with contextlib.suppress(OSError):
                    os.kill(state.pid, signum)
            except OSError:
                return
        else:
            return
        if signum != signal.SIGINT and state.kill_at is None:
            state.kill_at = time.monotonic() + state.spec.grace

    return forward


def _install_forwarding(state: _Run) -> dict[int, Any]:
    handler = _forwarder(state)
    return {sig: signal.signal(sig, handler) for sig in FORWARDED_SIGNALS}


def _restore(saved: dict[int, Any]) -> None:
    for sig, old in saved.items():
        signal.signal(sig, old)


def _forwarding(state: _Run) -> dict[int, Any]:
    try:
        return _install_forwarding(state)
    except ValueError:  # not the main thread: signals stay with the caller
        return {}


class _Waiter:
    """Waits for news of the program and for the run's control channel.

    The news is init's status pipe, else a pidfd on the program where the
    kernel has them, else a short sleep. The process events of a watched
    test command are read as they come (see :func:`_drain`).
    """

    def __init__(self, state: _Run, control: int | None) -> None:
        self._poll = select.poll()
        self._fd = -1
        self._owned = False
        self.control = control
        self._state = state
        self.events = -1 if state.events is None else state.events.fileno()
        if control is not None:
            self._poll.register(control, select.POLLIN)
        if self.events >= 0:
            self._poll.register(self.events, select.POLLIN)
        if state.tree is not None:
            self._fd = state.tree.fileno()
        else:
            try:
                self._fd = os.pidfd_open(state.pid)
            except (AttributeError, OSError):
                return
            self._owned = True
        self._poll.register(self._fd, select.POLLIN)

    def wait(self, timeout: float) -> tuple[bool, bool]:
        """Block up to ``timeout`` seconds.

        Returns:
            (the program may have exited, the control channel is readable).
        """
        if self._fd < 0 and self.control is None and self.events < 0:
            time.sleep(min(timeout, 0.005))
            return True, False
        if self._fd < 0:
            timeout = min(timeout, 0.005)  # no pidfd: poll the child too
        # Rounded up: a sub-millisecond rest rounded down to 0 spins until it passes.
        ready = {fd for fd, _ in self._poll.poll(max(math.ceil(timeout * 1000), 0))}
        if self.events in ready and not _drain(self._state):
            self._poll.unregister(self.events)
            self.events = -1
        exited = self._fd < 0 or self._fd in ready
        return exited, self.control in ready

    def forget_control(self) -> None:
        """Stop waiting on a control channel that has hung up."""
        if self.control is not None:
            self._poll.unregister(self.control)
            self.control = None

    def close(self) -> None:
        """Close the pidfd (init's pipe belongs to the tree)."""
        if self._owned and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1


def _open_watch(state: _Run) -> None:
    """Subscribe to the process events before the fork (test commands only)."""
    if state.spec.watch_tests is None:
        return
    from statetrace_guard.sandbox.procevents import TreeWatch, listen  # noqa: PLC0415

    try:
        state.events = listen()
    except AttributeError:  # no AF_NETLINK
        state.unwatched = "the kernel's process events exist only on Linux"
        return
    except OSError as exc:
        why = exc.strerror or str(exc)
        state.unwatched = f"the kernel's process events are not readable here: {why}"
        if exc.errno == errno.EPERM:
            state.unwatched += " (they need root)"
        return
    state.watch = TreeWatch(parent=os.getpid(), pick=state.spec.watch_tests.pick)


def _watch_root(state: _Run) -> None:
    """Name the tree's root (the supervisor's own child) once it is forked."""
    if state.watch is not None:
        state.watch.root = state.pid if state.tree is None else state.tree.child


def _drain(state: _Run) -> bool:
    """Handle the queued process events; False once they cannot be read."""
    if state.watch is None or state.events is None:
        return False
    try:
        state.watch.drain(state.events)
    except OSError as exc:
        state.unwatched = f"reading the process events failed: {exc}"
        _close_watch(state)
        return False
    return True


def _close_watch(state: _Run) -> None:
    if state.events is not None:
        state.events.close()
    state.events = None
    if state.unwatched is not None:
        state.watch = None


def _test_programs(state: _Run) -> dict[str, object] | None:
    """The ``test_programs`` record of a watched command, else None."""
    if state.spec.watch_tests is None:
        return None
    if state.watch is None:
        return {"runs": [], "unread": 0, "unobserved": state.unwatched}
    return state.watch.as_record()


def _try_reap(state: _Run, flags: int = os.WNOHANG) -> bool:
    if state.tree is not None:
        return _news_from_init(state, block=flags == 0)
    pid, status, usage = os.wait4(state.pid, flags)
    if pid == 0:
        return False
    state.status, state.usage = status, usage
    return True


def _news_from_init(state: _Run, *, block: bool) -> bool:
    """Whether init has reported the program's end (or ended itself)."""
    tree = state.tree
    assert tree is not None  # noqa: S101 - only called with a tree
    if block:
        tree.collect(end=True)
    elif tree.status_fd >= 0:
        tree.read()
    if tree.status is not None:
        state.status, state.usage = tree.status, tree.usage
        return True
    if not tree.gone:
        return False
    from statetrace_guard.sandbox.pidinit import ProgramUsage  # noqa: PLC0415

    tree.collect(end=False)
    state.status, state.usage = signal.SIGKILL, ProgramUsage()
    state.error = "the sandbox's init ended before the program (the tree was ended)"
    return True


def _tracker(state: _Run) -> TreeTracker:
    if state.tracker is None:
        from statetrace_guard.supervise import TreeTracker  # noqa: PLC0415 - lazy

        state.tracker = TreeTracker(
            state.pid,
            state.wall_started,
            state.start_ticks,
            init=state.tree is not None,
            reaped=state.reaped,
            helpers=state.spec.helpers,
        )
    return state.tracker


def _end_tree(state: _Run, grace: float) -> None:
    _tracker(state).end(grace)
    _try_reap(state, 0)


def _sample(state: _Run) -> None:
    count = _tracker(state).sample()
    spec, tracker = state.spec, _tracker(state)
    if spec.max_processes is not None and count > spec.max_processes:
        state.limit_hit = "processes"
    elif spec.max_memory is not None and tracker.peak_rss > spec.max_memory:
        state.limit_hit = "memory"


def _next_wake(state: _Run, next_sample: float) -> float:
    times = [t for t in (state.deadline, state.kill_at) if t is not None]
    return min([next_sample, *times])


def _on_control(state: _Run, waiter: _Waiter) -> None:
    """Forward what the client asks for; its hang-up is the program's SIGHUP."""
    control = state.spec.control
    if control is None:
        return
    try:
        signum = control.read()
    except EOFError:
        waiter.forget_control()
        signum = signal.SIGHUP
    if signum is not None:
        _forwarder(state)(signum, None)


def _wait_child(state: _Run) -> None:
    """Wait for the program; sample the tree and enforce deadlines meanwhile."""
    control = state.spec.control
    waiter = _Waiter(state, None if control is None else control.fileno())
    next_sample = state.started + SAMPLE_INTERVAL_S
    try:
        while True:
            timeout = _next_wake(state, next_sample) - time.monotonic()
            exited, asked = waiter.wait(max(timeout, 0.0))
            if asked:
                _on_control(state, waiter)
            if exited and _try_reap(state):
                return
            now = time.monotonic()
            if state.deadline is not None and now >= state.deadline:
                state.timed_out = True
                _end_tree(state, state.spec.grace)
                return
            if state.kill_at is not None and now >= state.kill_at:
                _end_tree(state, 0)
                return
            if now >= next_sample:
                _sample(state)
                next_sample = now + SAMPLE_INTERVAL_S
                if state.limit_hit is not None:
                    _end_tree(state, 0)
                    return
    finally:
        waiter.close()


def _has_children() -> bool:
    """Return whether the guard has any child left (no psutil needed).

    ``waitid(WNOWAIT)`` reaps nothing; ECHILD means no child at all. Where
    there is no waitid (macOS), assume there are and let psutil look.
    """
    if not hasattr(os, "waitid"):
        return True
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _finish(state: _Run) -> None:
    """After the program exited: end (or leave) what it left running."""
    if state.tree is not None:
        _finish_namespace(state, state.tree)
        return
    if state.tracker is None and not _has_children():
        return
    tracker = _tracker(state)
    tracker.sample()
    if tracker.leftovers() and not state.spec.allow_background:
        state.leftover = tracker.end(state.spec.grace)
    else:
        tracker.reap_orphans()


def _finish_namespace(state: _Run, tree: InitTree) -> None:
    """The same with init: it says whether anything else is still alive."""
    if tree.status_fd >= 0 and tree.others_alive and not tree.gone:
        if state.spec.allow_background:
            tree.detach()
            return
        tracker = _tracker(state)
        tracker.sample()
        if tracker.leftovers():
            state.leftover = tracker.end(state.spec.grace)
    tree.collect(end=True)
    _reaped(state).add_totals(tree.orphans)


def _exit_status(state: _Run) -> tuple[int, int | None, int | None]:
    """Return (exit_status, returncode, signal) from the wait status."""
    if os.WIFSIGNALED(state.status):
        sig = os.WTERMSIG(state.status)
        code = ExitCode.RUN_TIMEOUT if state.timed_out else ExitCode.SIGNAL_BASE + sig
        return int(code), None, sig
    returncode = os.WEXITSTATUS(state.status)
    if state.timed_out:
        return int(ExitCode.RUN_TIMEOUT), returncode, None
    return returncode, returncode, None


def _executables(state: _Run) -> tuple[Executable, ...]:
    main = os.path.realpath(_which(state.spec.argv[0], state.spec.env))
    found = {main: os.path.basename(main)}  # noqa: PTH119 - hot path
    if state.tracker is not None:
        for path, name in state.tracker.executables.items():
            found.setdefault(path, name)
    return tuple(Executable(name, path) for path, name in list(found.items())[:50])


def _peak_rss(state: _Run, self_peak: int) -> int:
    """Tree peak: sampled sum, or the kernel's high-water mark when larger.

    The kernel's ``ru_maxrss`` of the child counts the guard's own pages it
    shared between fork and exec, so it is used only above the guard's peak.
    """
    sampled = state.tracker.peak_rss if state.tracker is not None else 0
    kernel = max(state.usage.ru_maxrss * 1024, _reaped(state).maxrss_bytes)
    return max(sampled, kernel if kernel > self_peak else 0)


def _reaped(state: _Run) -> Reaped:
    return state.reaped


def _memory_refused(state: _Run, exit_status: int) -> bool:
    """A failed program whose address space reached the limit hit it."""
    limit = state.spec.max_memory
    if limit is None or exit_status == 0 or state.tracker is None:
        return False
    return state.tracker.peak_vms >= limit * 0.9


def _outcome(state: _Run, self_peak: int) -> RunOutcome:
    exit_status, returncode, sig = _exit_status(state)
    reaped = _reaped(state)
    seen = state.tracker.seen if state.tracker is not None else {state.pid}
    processes = len(seen | reaped.pids)
    if state.tree is not None:  # init's pid is not the program's
        processes = max(len(seen), 1 + reaped.others)
    limit_hit = state.limit_hit
    if limit_hit is None and _memory_refused(state, exit_status):
        limit_hit = "memory"
    return RunOutcome(
        exit_status=exit_status,
        returncode=returncode,
        signal=sig,
        timed_out=state.timed_out,
        duration_ms=(time.monotonic() - state.started) * 1000,
        cpu_user_s=state.usage.ru_utime + reaped.cpu_user_s,
        cpu_system_s=state.usage.ru_stime + reaped.cpu_system_s,
        peak_rss_bytes=_peak_rss(state, self_peak),
        processes=processes,
        executables=_executables(state),
        leftover=tuple(state.leftover),
        limit_hit=limit_hit,
        error=state.error,
        test_programs=_test_programs(state),
    )


def _start_ticks(pid: int) -> int | None:
    """Return the child's start time in clock ticks since boot (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:  # noqa: PTH123 - hot path
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return int(fields[19])


def _start(
    state: _Run, setup: ChildSetup | None, tty: int | None, ahead: InitAhead | None
) -> int:
    """Fork init or the program; return the read end of the report pipe.

    Raises:
        OSError: the namespace or the fork failed (nothing started).
    """
    state.started = time.monotonic()
    state.wall_started = time.time()
    if ahead is not None:  # init exists: give it its command
        state.tree, state.pid = ahead.tree, ahead.tree.init_pid
        try:
            ahead.release()
        except OSError as exc:  # init is gone: its own account, if it left one
            with contextlib.suppress(OSError):
                os.kill(ahead.tree.child, signal.SIGKILL)  # nothing ran
            ahead.tree.collect(end=False)
            said = _read_report(ahead.report)
            message = said.decode(errors="replace").split(":", 2)[-1]
            raise OSError(0, message or f"init is gone ({exc})") from None
        return ahead.report
    read_fd, write_fd = os.pipe()  # non-inheritable: closed by a successful exec
    try:
        if setup is not None and setup.pid_namespace != "none":
            _start_init(state, setup, tty, write_fd)
        else:
            _start_direct(state, setup, tty, write_fd)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


def _start_init(state: _Run, setup: ChildSetup, tty: int | None, report: int) -> None:
    from statetrace_guard.sandbox.pidinit import start_tree  # noqa: PLC0415 - Linux

    def program() -> NoReturn:
        _program(state.spec, setup, report, tty)

    def spawn() -> int:
        return _spawned(state.spec, setup, report)

    # A signal relayed before the tree is known would be lost: hold them.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        tree = start_tree(
            as_root=setup.pid_namespace == "root",
            enter=setup.enter,
            program=program,
            report=report,
            spawn=spawn if _spawnable(state.spec, tty) else None,
        )
        state.tree, state.pid = tree, tree.init_pid
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def init_ahead(
    *,
    as_root: bool,
    bounding: bool,
    launch: Callable[[], tuple[SandboxPlan, ChildSetup] | None],
    command: Callable[[], RunSpec | None],
) -> InitAhead:
    """Fork the PID namespace's init now; it waits for its command in init.

    Both callables run in init and block: ``launch`` until the command's
    sandbox plan arrives (it returns the plan and the program's sandbox
    setup, built without output descriptors), ``command`` until its spec
    does (once the client
    said go; whoever calls ``run`` with the returned handle sends it through
    ``release``). Either returns None when nothing will come (init exits).
    In between, init enters the program's namespaces and mounts and seals
    itself (no capabilities, seccomp: ``ChildSetup.seal``; Landlock waits
    for the outputs), while the supervisor waits for the client's go.
    No terminal is given to init (the resident helper's supervisors have
    none). With ``bounding`` init empties its bounding set while it waits
    (the plan must want that: ``drop_all(bounding=True)``).

    Raises:
        OSError: the namespace or the fork failed.
    """
    from statetrace_guard.sandbox.pidinit import Start, start_ahead  # noqa: PLC0415

    read_fd, write_fd = os.pipe()  # non-inheritable, as ``_start`` makes it
    wanted = "root" if as_root else "user"

    def later() -> Start | None:
        if bounding:
            from statetrace_guard.sandbox.capabilities import drop_bounding  # noqa: PLC0415

            drop_bounding()
        got = launch()
        if got is None:
            return None
        plan, setup = got  # the outputs come with the go
        drops = plan.seal.capabilities == "none"
        if (setup.pid_namespace, drops) != (wanted, bounding):
            raise OSError(0, "the command's sandbox does not match its init")
        # NOTE(speed): namespaces and mounts now, while the supervisor and
        # the client exchange the go (nothing runs before it).
        setup.enter()
        setup.seal()  # all but Landlock, whose grants may need the outputs
        spec = command()
        if spec is None:
            return None
        setup.add_outputs(_output_fds(spec))
        return Start(
            lambda: None,
            lambda: _program(spec, setup, write_fd, None),
            (lambda: _spawned(spec, setup, write_fd))
            if _spawnable(spec, None)
            else None,
        )

    try:
        tree = start_ahead(as_root=as_root, later=later, report=write_fd)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return InitAhead(tree, read_fd)


def _setup_for(spec: RunSpec) -> ChildSetup | None:
    """The program's sandbox setup, built here (raises GuardError)."""
    if spec.plan is None or spec.backend is None:
        return None
    return spec.backend.child_setup(spec.plan, _output_fds(spec))


def _start_direct(
    state: _Run, setup: ChildSetup | None, tty: int | None, report: int
) -> None:
    pid = os.fork()
    if pid == 0:
        _child(state.spec, setup, report, tty)
    state.pid = pid
    state.start_ticks = _start_ticks(pid)
    if tty is not None:  # without a terminal the child makes its own session
        with contextlib.suppress(OSError):  # the child may have exec'd already
            os.setpgid(pid, pid)
        _give_tty(tty, pid)


def _spawn_and_wait(
    spec: RunSpec, setup: ChildSetup | None, ahead: InitAhead | None = None
) -> RunOutcome:
    _set_subreaper()
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    state = _Run(spec)
    tty = _foreground_tty()
    saved = _forwarding(state)
    _open_watch(state)
    try:
        try:
            read_fd = _start(state, setup, tty, ahead)
        except OSError as exc:
            return RunOutcome(
                exit_status=ExitCode.RUN_GUARD_FAILED,
                error=f"sandbox or limit setup failed: {exc}",
            )
        finally:
            if setup is not None:
                setup.close()
        _watch_root(state)
        report = _read_report(read_fd)
        if report:
            return _failure(state, report)
        if spec.timeout is not None:
            state.deadline = state.started + spec.timeout
        _wait_child(state)
        _finish(state)
        _drain(state)  # the tree's exits are queued before its end is known
        return _outcome(state, self_peak)
    finally:
        _close_watch(state)
        _give_tty(tty, os.getpgrp())
        _restore(saved)


def _reap_exiting_inits() -> None:
    """An earlier run's init, left exiting (pidinit's ``collect``): reap it now.

    Before this run counts or samples this process's children.
    """
    pidinit = sys.modules.get("statetrace_guard.sandbox.pidinit")
    if pidinit is not None:
        pidinit.reap_exiting()


def _output_fds(spec: RunSpec) -> tuple[int, ...]:
    """The descriptors here that become the program's stdout and stderr."""
    if spec.fds is None:
        return (1, 2)
    return tuple(spec.fds[number] for number in (1, 2) if number in spec.fds)


def run(spec: RunSpec, ahead: InitAhead | None = None) -> RunOutcome:
    """Run ``spec.argv`` under ``spec.plan``; supervise and measure its tree.

    Args:
        spec: what to run, where, with which limits and sandbox plan.
        ahead: an init forked for this command beforehand (``init_ahead``);
            it builds the program's sandbox itself. Not used (discarded)
            with a terminal, which only a forked init passes on.

    Returns:
        The outcome; ``exit_status`` is what ``guard run`` should exit with.
        Failures to set up the sandbox are reported as exit status 125 with
        ``error`` set, never raised.
    """
    if not spec.argv:
        return RunOutcome(
            exit_status=ExitCode.RUN_NOT_FOUND, not_found=True, error="empty command"
        )
    _reap_exiting_inits()
    if ahead is not None:
        if _foreground_tty() is None:
            return _spawn_and_wait(spec, None, ahead)
        ahead.discard()
    setup: ChildSetup | None = None
    if spec.plan is not None and spec.backend is not None:
        try:
            setup = _setup_for(spec)
        except GuardError as exc:
            return RunOutcome(exit_status=ExitCode.RUN_GUARD_FAILED, error=exc.message)
    try:
        return _spawn_and_wait(spec, setup)
    finally:
        if setup is not None:
            setup.close()
