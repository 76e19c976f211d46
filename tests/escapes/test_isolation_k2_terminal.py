"""K2: no keystrokes pushed into the operator's terminal.

The issue's attack: with a terminal attached, an L0 program injected
keystrokes with TIOCSTI and the parent shell ran them after ``guard`` exited.
With a terminal the program keeps job control and the seccomp filter denies
TIOCSTI and TIOCLINUX; without one (stdin not a terminal, even when the
guard has a controlling terminal) it runs in a new session that has none.

A terminal keeps the program in ``guard run``'s own process (the helper
never serves one), so the terminal cases run there; the no-terminal case
runs on both paths.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time

import isolation_kit
import pytest
from isolation_kit import EDGES, VENV_PATH, guard_args, last

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="the seccomp filter is Linux"),
]
run_path = isolation_kit.run_path
_TIOCGPTN = 0x80045430  # the pty's number (not in the termios module)

INJECT = """
import fcntl, os, sys, termios
fd = os.open("/dev/tty", os.O_RDWR)
try:
    for ch in b"echo INJECTED\\n":
        fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
except OSError as exc:
    print("refused", exc.errno, flush=True)
    sys.exit(3)
print("injected", flush=True)
"""


def _on_terminal(argv: list[str], cwd, *, stdio_tty: bool) -> tuple[int, bytes, int]:
    """Run ``argv`` as the session leader of a new pty; return (status, output, pty).

    With ``stdio_tty`` its stdin, stdout and stderr are the terminal (an
    interactive agent); otherwise they are pipes while the terminal stays its
    controlling terminal.
    """
    master, slave = os.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    stdio = {"stdin": slave, "stdout": slave, "stderr": slave}
    if not stdio_tty:
        stdio = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
        }
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, "PATH": VENV_PATH},
        preexec_fn=own_terminal,  # noqa: PLW1509 - the terminal is set up in the child
        **stdio,
    )
    output = b""
    if stdio_tty:
        os.close(slave)
        slave = -1
        output = _drain(master, proc)
    else:
        output, _ = proc.communicate(timeout=90)
    status = proc.wait(timeout=90)
    if slave >= 0:
        os.close(slave)
    return status, output, master


def _drain(master: int, proc: subprocess.Popen) -> bytes:
    chunks = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def _pending_input(master: int) -> bytes:
    """What waits in the terminal's input queue for the shell that reads next."""
    slave = os.open(_slave_name(master), os.O_RDWR | os.O_NOCTTY)
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ICANON  # read what is queued, line or not
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(slave, False)
        try:
            return os.read(slave, 4096)
        except BlockingIOError:
            return b""
    finally:
        os.close(slave)


def _slave_name(master: int) -> str:
    number = fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0")
    return f"/dev/pts/{int.from_bytes(number, sys.byteorder)}"


def _legacy_tiocsti() -> bool:
    try:
        with open("/proc/sys/dev/tty/legacy_tiocsti") as handle:
            return handle.read().strip() != "0"
    except OSError:
        return True  # before Linux 6.2: always allowed


class TestWithTerminal:
    @pytest.mark.skipif(
        not _legacy_tiocsti(), reason="the kernel refuses TIOCSTI here by itself"
    )
    def test_the_attack_works_without_the_guard(self, workspace):
        """Control: the same program outside the guard does inject."""
        status, output, master = _on_terminal(
            ["python3", "-c", INJECT], workspace, stdio_tty=True
        )
        try:
            assert status == 0, output
            assert b"echo INJECTED" in _pending_input(master)
        finally:
            os.close(master)

    @pytest.mark.parametrize("level", EDGES)
    def test_rejects_tiocsti_and_keeps_job_control(self, workspace, level):
        """TIOCSTI fails with EPERM; nothing waits in the input queue after."""
        code = INJECT + "\nprint(os.tcgetpgrp(0) == os.getpgrp())"
        status, output, master = _on_terminal(
            guard_args(level, ["python3", "-c", code]), workspace, stdio_tty=True
        )
        try:
            assert status == 3, output
            assert b"refused 1" in output
            assert _pending_input(master) == b""
        finally:
            os.close(master)
        assert last(workspace, "command.finished")["exit_code"] == 3

    def test_an_interactive_program_reads_the_terminal(self, workspace):
        """Ordinary terminal use still works: the program is in the foreground."""
        code = (
            "import os, sys\n"
            "print('fg' if os.tcgetpgrp(0) == os.getpgrp() else 'bg', flush=True)\n"
            "print(sys.stdin.readline().strip().upper(), flush=True)\n"
        )
        master, slave = os.openpty()

        def own_terminal() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            guard_args("L0", ["python3", "-c", code]),
            cwd=workspace,
            env={**os.environ, "PATH": VENV_PATH},
            preexec_fn=own_terminal,  # noqa: PLW1509 - see _on_terminal
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        while b"fg" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 1024)
        os.write(master, b"hello\n")
        seen += _drain(master, proc)
        os.close(master)
        assert proc.wait(timeout=60) == 0
        assert b"fg" in seen
        assert b"HELLO" in seen


@pytest.mark.usefixtures("run_path")
class TestWithoutTerminal:
    def test_no_controlling_terminal_to_inject_into(self, workspace):
        """The guard has a terminal but stdio are pipes: the program has none."""
        status, output, master = _on_terminal(
            guard_args("L0", ["python3", "-c", INJECT]), workspace, stdio_tty=False
        )
        try:
            assert status != 0
            assert b"injected" not in output
            assert b"No such device or address" in output  # open("/dev/tty")
            assert _pending_input(master) == b""
        finally:
            os.close(master)
