"""The PID namespace's init on real processes, as root and in a user namespace."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from statetrace_guard.levels import Level
from statetrace_guard.runner import RunSpec, run
from statetrace_guard.sandbox.base import FsLayout, make_private_tmp, remove_private_tmp
from statetrace_guard.sandbox.linux import LinuxBackend

BACKEND = LinuxBackend()
CAPS = BACKEND.probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or not CAPS.pidns, reason="needs PID namespaces (root or userns)"
    ),
]
PY = sys.executable
MODES = {
    "root": BACKEND,
    "userns": LinuxBackend(dataclasses.replace(CAPS, root=False)) if CAPS else None,
}


@pytest.fixture(params=list(MODES))
def backend(request):
    if request.param == "userns" and not (CAPS and CAPS.userns):
        pytest.skip("needs unprivileged user namespaces")
    if request.param == "root" and not (CAPS and CAPS.root):
        pytest.skip("needs root")
    return MODES[request.param]


@pytest.fixture
def layout(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    private = make_private_tmp(str(tmp_path))
    yield FsLayout(str(ws), private, str(tmp_path), ())
    remove_private_tmp(private)


def go(backend, layout, argv, **kwargs):
    plan = backend.plan(Level.L1, network_open=False, layout=layout)
    kwargs.setdefault("grace", 1.0)
    return run(
        RunSpec(
            argv,
            layout.workspace,
            dict(os.environ),
            plan=plan,
            backend=backend,
            **kwargs,
        )
    )


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


DEV_LISTING = (
    *("fd", "full", "null", "ptmx", "pts", "random", "shm"),
    *("stderr", "stdin", "stdout", "tty", "urandom", "zero"),
)


class TestInit:
    def test_the_program_is_pid_2_under_init(self, backend, layout):
        """Inside, the program is PID 2 and its parent PID 1; /proc shows only them."""
        out = Path(layout.workspace) / "out"
        code = f"""
            import os
            pids = sorted(int(n) for n in os.listdir('/proc') if n.isdigit())
            open({str(out)!r}, 'w').write(f'{{os.getpid()}} {{os.getppid()}} {{pids}}')
            """
        outcome = go(backend, layout, py(code))
        assert outcome.exit_status == 0, outcome.error
        assert out.read_text() == "2 1 [1, 2]"

    def test_the_program_has_its_own_dev(self, backend, layout):
        """Root or in a user namespace: a fresh /dev, no other terminal, no host shm.

        (Issue 12 hardening: another terminal's typed input was readable
        through /dev/pts/N, other processes' shared memory through /dev/shm.)
        """
        out = Path(layout.workspace) / "out"
        master, slave = os.openpty()
        os.write(master, b"typed\n")
        segment = Path(f"/dev/shm/guard-test-{os.getpid()}-{id(layout)}")
        segment.write_text("host")
        code = f"""
            import os
            seen = [sorted(os.listdir('/dev'))]
            for path in ({os.ttyname(slave)!r}, {str(segment)!r}):
                try:
                    seen.append(open(path, 'rb').read(10))
                except OSError as error:
                    seen.append(error.strerror)
            m, s = os.openpty()
            seen.append(os.ttyname(s))
            open({str(out)!r}, 'w').write(repr(seen))
            """
        try:
            outcome = go(backend, layout, py(code))
            assert outcome.exit_status == 0, outcome.error
            listing, terminal, shared, own = eval(out.read_text())  # noqa: S307 - our repr
            assert listing == sorted(DEV_LISTING)
            assert terminal == "No such file or directory"
            assert shared == "No such file or directory"
            assert own.startswith("/dev/pts/")
            assert os.read(slave, 10) == b"typed\n"
        finally:
            segment.unlink()
            os.close(master)
            os.close(slave)

    @pytest.mark.parametrize(("code", "status"), [(0, 0), (1, 1), (255, 255)])
    def test_exit_status_is_the_programs(self, backend, layout, code, status):
        outcome = go(backend, layout, ["sh", "-c", f"exit {code}"])
        assert outcome.exit_status == status
        assert outcome.returncode == status

    def test_a_signal_gives_128_plus_n(self, backend, layout):
        outcome = go(backend, layout, ["sh", "-c", "kill -TERM $$"])
        assert (outcome.exit_status, outcome.signal) == (
            128 + signal.SIGTERM,
            signal.SIGTERM,
        )

    def test_cpu_of_reaped_orphans_is_counted(self, backend, layout):
        """Orphans init reaps add their CPU time to the figures."""
        busy = Path(layout.workspace) / "busy.py"
        busy.write_text(
            "import time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\n"
        )
        script = f"({PY} {busy} &) ; sleep 1.5"
        outcome = go(backend, layout, ["sh", "-c", script])
        assert outcome.exit_status == 0
        assert outcome.cpu_user_s + outcome.cpu_system_s >= 0.25
        assert outcome.processes >= 2

    def test_leftovers_are_ended_and_listed(self, backend, layout):
        marker = f"{time.time_ns()}"
        # Wait until the background job is sleep (setsid execs it): listed
        # earlier, it is still called setsid (seen under load).
        script = (
            f"setsid sleep 300 {marker} & p=$!; "
            'until [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ]; do :; done'
        )
        outcome = go(backend, layout, ["sh", "-c", script])
        assert outcome.exit_status == 0
        assert [e["name"] for e in outcome.leftover] == ["sleep"]
        assert not any(alive(e["pid"]) for e in outcome.leftover)

    def test_background_allowed_outlives_the_run(self, backend, layout):
        """allow_background: init stays with the job after the run returns."""
        pidfile = Path(layout.workspace) / "bg"
        seconds = f"29.{time.time_ns() % 10**9}"  # names our sleep alone
        outcome = go(
            backend,
            layout,
            ["sh", "-c", f"sleep {seconds} & echo $! > {pidfile}"],
            allow_background=True,
        )
        assert outcome.exit_status == 0
        assert outcome.leftover == ()
        inner = int(pidfile.read_text())
        assert inner > 2  # a pid inside the namespace
        deadline = time.monotonic() + 10  # it may not have exec'd sleep yet
        found: list[int] = []
        while not found and time.monotonic() < deadline:
            found = [
                int(n)
                for n in os.listdir("/proc")
                if n.isdigit() and _cmdline(int(n)) == f"sleep\0{seconds}\0".encode()
            ]
            time.sleep(0.02)
        assert found
        for pid in found:
            os.kill(pid, signal.SIGKILL)

    def test_a_relayed_signal_reaches_the_program(self, backend, layout):
        ready = Path(layout.workspace) / "ready"
        code = f"""
            import signal, sys, time
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
            open({str(ready)!r}, 'w').write('1')
            time.sleep(30)
            """

        def later():
            deadline = time.monotonic() + 30
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGTERM)

        thread = threading.Thread(target=later)
        thread.start()
        try:
            outcome = go(backend, layout, py(code), grace=5.0)
        finally:
            thread.join()
        assert outcome.exit_status == 7

    def test_a_killed_init_is_reported_and_ends_the_tree(self, backend, layout):
        """Init killed from outside: the namespace dies, the outcome says so."""
        marker = f"{time.time_ns()}"
        code = f"import time; time.sleep(60)  # {marker}"

        def kill_init():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for n in os.listdir("/proc"):
                    if n.isdigit() and marker.encode() in _cmdline(int(n)):
                        os.kill(_parent(int(n)), signal.SIGKILL)
                        return
                time.sleep(0.02)

        thread = threading.Thread(target=kill_init)
        thread.start()
        try:
            outcome = go(backend, layout, py(code))
        finally:
            thread.join()
        assert outcome.exit_status == 128 + signal.SIGKILL
        assert outcome.error is not None
        assert "init" in outcome.error


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rpartition(b")")[2].split()[1])
