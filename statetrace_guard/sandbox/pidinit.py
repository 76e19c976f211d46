"""The program's own PID namespace and the small init that runs it.

The program must not be PID 1 of its namespace: PID 1 ignores every signal
whose action is the default one, so a relayed SIGTERM or SIGINT would do
nothing. So the supervisor forks an *init* (a copy of itself; nothing is
exec'd) that is PID 1: it enters the program's other namespaces, mounts a
fresh ``/proc``, starts the program as PID 2, relays signals to the program's
process group, reaps everything, and tells the supervisor the program's
real wait status and resource use. Without a terminal or a memory limit
init first takes the program's restrictions itself and starts it with
``posix_spawn`` (``start.spawn``); otherwise it forks the program. The
resident helper's supervisors fork init ahead of the command
(``start_ahead``): it waits until the command comes.

Why the tree dies with its supervisor, every time (issue 14.5): init has
PR_SET_PDEATHSIG = SIGKILL (a signal from outside its namespace, which PID 1
cannot ignore), checks after setting it that the supervisor was still alive
(a pipe whose only writer is the supervisor), and when PID 1 of a namespace
dies the kernel kills every other process in it. Nothing in the namespace
can leave it, so double forks and ``setsid`` do not escape.

As root the supervisor itself unshares the PID namespace for its next child
and restores its own right after the fork. Without root, a small holder
process enters a new user and PID namespace and forks init; it waits for
init and dies with the supervisor too.

Messages, init -> supervisor, one line each on the status pipe:

* ``i PID``: (holder only) init's pid in the supervisor's namespace;
* ``x STATUS UTIME STIME MAXRSS_KB CHILDREN``: the program was reaped;
  CHILDREN is 1 when other processes are still alive in the namespace;
* ``d UTIME STIME MAXRSS_KB COUNT``: everything else init reaped; init exits.

Commands, supervisor -> init: ``q`` ends every process in the namespace,
then ``d`` follows; ``b`` (background allowed) makes init outlive the
supervisor until its last process ends. End of file without ``b`` means the
supervisor is gone: init exits at once, and the kernel ends the rest.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from statetrace_guard.sandbox.landlock import libc

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    # What init is given: how to start the program, or how to wait for that.
    Source: TypeAlias = "Start | Callable[[], Start | None]"

__all__ = [
    "FORWARDED",
    "InitTree",
    "ProgramUsage",
    "Start",
    "reap_exiting",
    "start_ahead",
    "start_tree",
]

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_CLONE_NEWPID = 0x20000000
_CLONE_NEWUSER = 0x10000000
_INIT_FAILED = 125
_QUIT_WAIT_S = 10.0


@dataclass
class ProgramUsage:
    """The program's resource use as ``wait4`` gave it to init."""

    ru_utime: float = 0.0
    ru_stime: float = 0.0
    ru_maxrss: int = 0  # KiB, like struct rusage


@dataclass
class InitTree:
    """The supervisor's handle on init and the program below it.

    Attributes:
        child: the supervisor's own child (init, or the user-namespace holder).
        init_pid: init's pid as the supervisor sees it.
        status_fd: the read end of init's messages.
        command_fd: the write end of the supervisor's commands.
    """

    child: int
    init_pid: int
    status_fd: int
    command_fd: int
    status: int | None = None
    usage: ProgramUsage = field(default_factory=ProgramUsage)
    others_alive: bool = False
    orphans: tuple[float, float, int, int] = (0.0, 0.0, 0, 0)
    gone: bool = False  # init's end of the status pipe is closed
    done: bool = False  # init said ``d``: nothing is left in the namespace
    _buffer: bytes = b""

    def fileno(self) -> int:
        """The descriptor that becomes readable when init has news."""
        return self.status_fd

    def read(self) -> None:
        """Take in whatever init has written (the pipe never blocks here)."""
        if self.status_fd < 0:
            return
        try:
            chunk = os.read(self.status_fd, 4096)
        except BlockingIOError:
            return
        if not chunk:
            self.gone = True
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            self._take(line.split())

    def _take(self, words: list[bytes]) -> None:
        if words[:1] == [b"x"] and len(words) == 6:  # noqa: PLR2004
            self.status = int(words[1])
            self.usage = ProgramUsage(float(words[2]), float(words[3]), int(words[4]))
            self.others_alive = words[5] == b"1"
        elif words[:1] == [b"d"] and len(words) == 5:  # noqa: PLR2004
            self.done = True
            self.orphans = (
                float(words[1]),
                float(words[2]),
                int(words[3]),
                int(words[4]),
            )

    def signal(self, signum: int) -> None:
        """Relay ``signum``: init passes it to the program's process group."""
        with contextlib.suppress(OSError):
            os.kill(self.init_pid, signum)

    def _command(self, word: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.command_fd, word)

    def collect(self, *, end: bool) -> None:
        """Wait for init to finish (ending the namespace first if ``end``).

        Bounded: an init that does not answer is killed, and the kernel ends
        its namespace with it. Once done, later calls do nothing.
        """
        if self.status_fd < 0:
            return
        if end:
            self._command(b"q")
        deadline = time.monotonic() + _QUIT_WAIT_S
        while not self.gone and time.monotonic() < deadline:
            ready, _, _ = select.select([self.status_fd], [], [], 0.5)
            if ready:
                self.read()
        if not self.gone:
            with contextlib.suppress(OSError):
                os.kill(self.child, signal.SIGKILL)
        # NOTE(speed): once init said ``d`` and closed its pipe, nothing is
        # left in the namespace and init only tears down its own memory
        # (~0.4 ms of a forked Python): the outcome does not wait for that.
        # ``reap_exiting`` collects it (the next run does, before anything
        # counts this process's children).
        with contextlib.suppress(ChildProcessError):
            if self.done and self.gone:
                if os.waitpid(self.child, os.WNOHANG)[0] == 0:
                    _exiting.append(self.child)
            else:
                os.waitpid(self.child, 0)
        self.close()

    def detach(self) -> None:
        """Leave init and what still runs (background allowed) to themselves."""
        self._command(b"b")
        self.close()

    def close(self) -> None:
        """Close the supervisor's ends of both pipes."""
        for fd in (self.status_fd, self.command_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.status_fd = self.command_fd = -1


# Inits that had said ``d`` but were still exiting when collected.
_exiting: list[int] = []


def reap_exiting() -> None:
    """Reap the inits ``collect`` left exiting (each ends within moments)."""
    while _exiting:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(_exiting.pop(), 0)


def start_tree(
    *,
    as_root: bool,
    enter: Callable[[], None],
    program: Callable[[], NoReturn],
    report: int,
    spawn: Callable[[], int] | None = None,
) -> InitTree:
    """Fork init (and, without root, its holder); return the handle.

    Args:
        as_root: unshare the PID namespace here; otherwise a holder process
            makes a user and a PID namespace.
        enter: run by init before it forks the program (namespaces, mounts).
        program: run in the forked program; never returns (exec or exit).
        report: the write end of the runner's report pipe; init writes its own
            setup failures there.
        spawn: when given, init runs it instead of forking ``program``: it
            restricts init itself as the program would be and starts the
            program without forking Python (see ``_init``); the program's pid.

    Raises:
        OSError: the namespace or the fork failed (nothing was started).
    """
    return _begin(as_root, Start(enter, program, spawn), report)


def start_ahead(
    *, as_root: bool, later: Callable[[], Start | None], report: int
) -> InitTree:
    """Fork init before its command is known; it waits in ``later``.

    NOTE(speed): the resident helper's supervisor forks init while it waits
    for its launch, so forking a Python process is not on the command's
    path. ``later`` runs in init: it blocks until the command arrives and
    returns how to start it, or None when it will not come (init exits).

    Raises:
        OSError: the namespace or the fork failed (nothing was started).
    """
    return _begin(as_root, later, report)


def _begin(as_root: bool, source: Source, report: int) -> InitTree:
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    command_r, command_w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(status_r, False)
    ends = _Ends(status_w, command_r, command_w, report)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    try:
        child = _fork_first(as_root, ends, source)
    except BaseException:
        for fd in (status_r, status_w, command_r, command_w):
            os.close(fd)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(status_w)
    os.close(command_r)
    tree = InitTree(child, child, status_r, command_w)
    if not as_root:
        tree.init_pid = _holder_says(tree)
    return tree


@dataclass(frozen=True)
class Start:
    """How init starts the program (see ``start_tree``)."""

    enter: Callable[[], None]
    program: Callable[[], NoReturn]
    spawn: Callable[[], int] | None


@dataclass(frozen=True)
class _Ends:
    """The pipe ends a forked process keeps or closes."""

    status_w: int
    command_r: int
    command_w: int
    report: int


def _fork_first(as_root: bool, ends: _Ends, source: Source) -> int:
    """Fork init (root) or the holder; return its pid here."""
    lib = libc()
    if not as_root:
        pid = os.fork()
        if pid == 0:
            _holder(ends, source)
        return pid
    home = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if lib.unshare(_CLONE_NEWPID) != 0:
            raise OSError(0, "unshare(CLONE_NEWPID) failed")
        pid = os.fork()
        if pid == 0:
            _init(ends, source)
        # The next child of the supervisor must be born in its own namespace.
        if lib.setns(home, _CLONE_NEWPID) != 0:
            os._exit(70)  # stuck: every later fork would land in the sandbox
        return pid
    finally:
        os.close(home)


def _holder_says(tree: InitTree) -> int:
    """Read the holder's ``i PID`` line (it comes first, or never)."""
    deadline = time.monotonic() + _QUIT_WAIT_S
    while time.monotonic() < deadline:
        select.select([tree.status_fd], [], [], 0.5)
        try:
            chunk = os.read(tree.status_fd, 64)
        except BlockingIOError:
            continue
        if not chunk:
            break
        tree._buffer += chunk  # noqa: SLF001 - the line is consumed here
        if b"\n" in tree._buffer:  # noqa: SLF001
            line, _, tree._buffer = tree._buffer.partition(b"\n")  # noqa: SLF001
            words = line.split()
            if words[:1] == [b"i"] and len(words) == 2:  # noqa: PLR2004
                return int(words[1])
            break
    tree.gone = True
    return tree.child


def _die_with_parent(ends: _Ends) -> None:
    """PR_SET_PDEATHSIG, then make sure the supervisor did not die before."""
    libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.close(ends.command_w)  # only the supervisor may hold the write end
    ready = select.poll()
    ready.register(ends.command_r, select.POLLIN)
    for _, event in ready.poll(0):
        if event & select.POLLHUP:
            os._exit(_INIT_FAILED)


def _holder(ends: _Ends, source: Source) -> NoReturn:
    """Without root: a user and PID namespace, init below, wait, exit."""
    try:
        _die_with_parent(ends)
        from statetrace_guard.sandbox.netns import enter_user_namespace  # noqa: PLC0415

        enter_user_namespace(extra_flags=_CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            _init(ends, source, reclose=False)
        os.write(ends.status_w, f"i {pid}\n".encode())
        _close_except(set())
        os.waitpid(pid, 0)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - must reach the runner
        _say_failed(ends.report, exc)
        os._exit(_INIT_FAILED)


def _say_failed(report: int, exc: BaseException) -> None:
    code = getattr(exc, "errno", None) or 0
    with contextlib.suppress(OSError):
        os.write(report, f"setup:{code}:{exc}".encode(errors="replace"))


def _init(ends: _Ends, source: Source, *, reclose: bool = True) -> NoReturn:
    """PID 1: enter the namespaces, start the program, relay, reap, report.

    NOTE(speed): with ``start.spawn`` init takes the program's restrictions
    itself (Landlock, no capabilities, seccomp; not dumpable, so the
    program, the same uid without capabilities, cannot read or trace it)
    and starts the program with ``posix_spawn``: no second fork of a Python
    process and its copy-on-write faults, and the exec happens from a
    vfork child (nothing of init's memory to tear down). Init needs no
    privilege after the mounts: it waits, reads and writes its pipes and
    signals its own namespace.
    """
    try:
        if reclose:
            _die_with_parent(ends)
        else:
            libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setpgid(0, 0)  # not in the terminal's foreground group
        start = source if isinstance(source, Start) else source()
        if start is None:  # forked ahead and not needed after all: nothing ran
            os._exit(0)
        start.enter()
        os.chdir("/")
        state = _InitState(ends.status_w, ends.command_r)
        state.install()
        if start.spawn is not None:
            libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
            pid = start.spawn()
        else:
            pid = os.fork()
            if pid == 0:
                start.program()
        state.program = pid
        _close_except({ends.status_w, ends.command_r, *state.wake})
    except BaseException as exc:  # noqa: BLE001 - must reach the runner
        _say_failed(ends.report, exc)
        os._exit(_INIT_FAILED)
    state.serve()


def _close_except(keep: set[int]) -> None:
    """Close every descriptor but ``keep`` (init must not hold the client's)."""
    low = 0
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


class _InitState:
    """What PID 1 keeps while it serves."""

    def __init__(self, status_w: int, command_r: int) -> None:
        self.status_w = status_w
        self.command_r = command_r
        self.program = 0
        self.reported = False
        self.detached = False
        self.others = [0.0, 0.0, 0, 0]
        self.wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def install(self) -> None:
        """Handlers before the program exists; signals stay blocked till then."""
        signal.set_wakeup_fd(self.wake[1])
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for sig in FORWARDED:
            signal.signal(sig, self._relay)

    def _relay(self, signum: int, _frame: object) -> None:
        if self.program > 0 and not self.reported:
            with contextlib.suppress(OSError):
                os.killpg(self.program, signum)

    def _say(self, line: str) -> None:
        if not self.detached:
            with contextlib.suppress(OSError):
                os.write(self.status_w, line.encode())

    def reap(self, flags: int) -> bool:
        """Reap what has exited; False once no child is left."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, flags)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.program:
                self.reported = True
                alive = self._has_children()
                self._say(
                    f"x {status} {usage.ru_utime!r} {usage.ru_stime!r} "
                    f"{usage.ru_maxrss} {int(alive)}\n"
                )
            else:
                self.others[0] += usage.ru_utime
                self.others[1] += usage.ru_stime
                self.others[2] = max(int(self.others[2]), usage.ru_maxrss)
                self.others[3] += 1

    @staticmethod
    def _has_children() -> bool:
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    def finish(self) -> NoReturn:
        """Report what init reaped besides the program, and exit."""
        utime, stime, maxrss, count = self.others
        self._say(f"d {utime!r} {stime!r} {maxrss} {count}\n")
        if not self.detached:  # the supervisor sees the end now, not after teardown
            with contextlib.suppress(OSError):
                os.close(self.status_w)
        os._exit(0)

    def serve(self) -> NoReturn:
        """Reap and obey until the namespace is empty or the supervisor says."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        poller = select.poll()
        poller.register(self.command_r, select.POLLIN)
        poller.register(self.wake[0], select.POLLIN)
        while True:
            if not self.reap(os.WNOHANG) and self.reported:
                self.finish()
            for fd, _event in poller.poll():
                if fd == self.wake[0]:
                    with contextlib.suppress(OSError):
                        os.read(fd, 512)
                elif self._obey(os.read(fd, 16)):
                    poller.unregister(fd)

    def _obey(self, command: bytes) -> bool:
        """Act on the supervisor's word; True when the pipe is done."""
        if b"q" in command:
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)  # all of the namespace but init
            while self.reap(0):
                pass
            self.finish()
        if b"b" in command:
            libc().prctl(_PR_SET_PDEATHSIG, 0, 0, 0, 0)
            self.detached = True
            os.close(self.status_w)
        if not command:
            if not self.detached:
                os._exit(0)  # the supervisor is gone: so is the namespace
            return True
        return False
