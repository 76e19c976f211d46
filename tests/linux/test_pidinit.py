"""The PID namespace's init on real processes, as root and in a user namespace."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from statetrace_guard.levels import Level
from statetrace_guard.runner import RunSpec, init_ahead, run
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


class TestSpawnedProgram:
    """Init restricts itself and spawns the program (no memory limit, no terminal)."""

    def test_init_holds_no_more_than_the_program(self, backend, layout):
        """Init has no capabilities, no_new_privs, seccomp, and is not dumpable.

        The program (the same uid) can neither read init's environment nor
        trace it: init took the program's restrictions before spawning it.
        """
        out = Path(layout.workspace) / "out"
        code = f"""
            import os
            status = dict(
                line.split(':', 1) for line in open('/proc/1/status').read().splitlines()
            )
            seen = {{k: status[k].strip() for k in ('CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp')}}
            try:
                open('/proc/1/environ', 'rb').read()
                seen['environ'] = 'read'
            except OSError as error:
                seen['environ'] = error.strerror
            seen['mine'] = open('/proc/self/status').read().count('CapEff:\\t0000000000000000')
            open({str(out)!r}, 'w').write(repr(seen))
            """
        outcome = go(backend, layout, py(code))
        assert outcome.exit_status == 0, outcome.error
        seen = eval(out.read_text())  # noqa: S307 - our repr
        assert seen["CapEff"] == seen["CapPrm"] == seen["CapBnd"] == "0" * 16
        assert seen["NoNewPrivs"] == "1"
        assert seen["Seccomp"] == "2"
        assert seen["environ"] == "Permission denied"
        assert seen["mine"] == 1

    def test_signals_come_default_and_unblocked(self, backend, layout):
        """What init ignores or blocks for itself is not what the program gets."""
        out = Path(layout.workspace) / "out"
        outcome = go(
            backend,
            layout,
            ["sh", "-c", f"grep -E '^Sig(Blk|Ign)' /proc/self/status > {out}"],
        )
        assert outcome.exit_status == 0, outcome.error
        fields = dict(line.split(":\t") for line in out.read_text().splitlines())
        assert int(fields["SigBlk"], 16) == 0
        ignored = int(fields["SigIgn"], 16)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            assert not ignored & (1 << (sig - 1)), sig

    def test_the_programs_path_is_searched_as_execvpe_does(
        self, backend, layout, tmp_path
    ):
        """The program's own PATH, skipping a non-executable file of that name."""
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        (first / "guard-spawn-tool").write_text("#!/bin/sh\nexit 3\n")  # not executable
        tool = second / "guard-spawn-tool"
        tool.write_text("#!/bin/sh\nexit 7\n")
        tool.chmod(0o755)
        env = dict(
            os.environ, PATH=f"{first}:{tmp_path / 'none'}:{second}:/usr/bin:/bin"
        )
        plan = backend.plan(Level.L1, network_open=False, layout=layout)
        outcome = run(
            RunSpec(
                ["guard-spawn-tool"], layout.workspace, env, plan=plan, backend=backend
            )
        )
        assert outcome.exit_status == 7, outcome.error
        tool.chmod(0o644)
        outcome = run(
            RunSpec(
                ["guard-spawn-tool"], layout.workspace, env, plan=plan, backend=backend
            )
        )
        assert outcome.exit_status == 127
        assert "Permission denied" in (outcome.error or "")
        outcome = run(
            RunSpec(
                ["guard-spawn-none"], layout.workspace, env, plan=plan, backend=backend
            )
        )
        assert outcome.exit_status == 127
        assert outcome.not_found

    def test_an_exiting_init_is_reaped_by_the_next_run(self, backend, layout):
        """The outcome does not wait for init's teardown; no zombie piles up."""
        before = set(_zombie_children())  # other tests' (background runs)
        for _ in range(3):
            assert go(backend, layout, ["true"]).exit_status == 0
        time.sleep(0.2)
        go(backend, layout, ["true"])
        left = set(_zombie_children()) - before
        assert len(left) <= 1  # at most the last run's init, still exiting


def _zombie_children() -> list[int]:
    """This process's children that have exited and are not reaped."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
        if int(fields[1]) == os.getpid() and fields[0] == b"Z":
            found.append(int(name))
    return found


@pytest.mark.skipif(not (CAPS and CAPS.root), reason="init is forked ahead as root")
class TestInitAhead:
    """runner.init_ahead: init forked before its command, as the helper does it."""

    def _ahead(self, backend, layout, argv, *, gate=None, fds=None, **kwargs):
        """(handle, spec); ``gate``: a pipe init reads before it takes the spec."""
        plan = backend.plan(Level.L1, network_open=False, layout=layout)
        spec = RunSpec(
            argv,
            layout.workspace,
            dict(os.environ),
            plan=plan,
            backend=backend,
            fds=fds,
            grace=1.0,
            **kwargs,
        )

        def command():
            if gate is not None:
                return spec if os.read(gate, 1) == b"g" else None
            return spec

        handle = init_ahead(
            as_root=True,
            bounding=plan.seal.capabilities == "none",
            launch=lambda: (plan, backend.child_setup(plan, ())),
            command=command,
        )
        return handle, spec

    def test_the_program_runs_under_the_init_forked_ahead(self, layout):
        out = Path(layout.workspace) / "out"
        handle, spec = self._ahead(
            BACKEND, layout, ["sh", "-c", f"grep -E '^CapBnd' /proc/1/status > {out}"]
        )
        outcome = run(spec, handle)
        assert outcome.exit_status == 0, outcome.error
        assert out.read_text().split() == ["CapBnd:", "0" * 16]

    def test_mounts_are_made_before_the_go_and_nothing_runs_without_it(self, layout):
        """Init enters its namespaces while it waits; no go, no program."""
        marker = Path(layout.workspace) / "ran"
        gate_r, gate_w = os.pipe()
        handle, _ = self._ahead(BACKEND, layout, ["touch", str(marker)], gate=gate_r)
        os.close(gate_r)
        mine = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{handle.tree.init_pid}/ns/mnt") == mine:
            assert time.monotonic() < deadline, "init never entered its mounts"
            time.sleep(0.01)
        os.write(gate_w, b"n")  # no go: init exits, told nothing
        os.close(gate_w)
        handle.discard()
        assert not marker.exists()
        assert not alive(handle.tree.init_pid)

    def test_init_waits_for_the_go_sealed_and_the_program_gets_landlock(self, layout):
        """Capabilities and seccomp go before the go; Landlock comes after it."""
        out = Path(layout.workspace) / "out"
        outside = Path(tempfile.mkdtemp(prefix="guard-sealed-", dir=Path.home()))
        gate_r, gate_w = os.pipe()
        script = f"touch {outside}/planted; echo $? > {out}"
        handle, spec = self._ahead(BACKEND, layout, ["sh", "-c", script], gate=gate_r)
        os.close(gate_r)
        try:
            deadline = time.monotonic() + 10
            while _status_of(handle.tree.init_pid).get("Seccomp") != "2":
                assert time.monotonic() < deadline, "init never sealed itself"
                time.sleep(0.01)
            waiting = _status_of(handle.tree.init_pid)
            assert waiting["CapEff"] == waiting["CapPrm"] == "0" * 16
            assert waiting["NoNewPrivs"] == "1"
            os.write(gate_w, b"g")
            outcome = run(spec, handle)
            assert outcome.exit_status == 0, outcome.error
            assert out.read_text().strip() != "0"  # refused by Landlock
            assert not (outside / "planted").exists()
        finally:
            os.close(gate_w)
            shutil.rmtree(outside)

    def test_an_output_file_outside_the_grants_stays_writable(self, layout):
        """The client's stdout file gets its grant after the go (add_outputs).

        Outside every write grant of L1 (not the workspace, not a temp dir):
        reopening it through /dev/stdout needs that grant.
        """
        folder = Path(tempfile.mkdtemp(prefix="guard-ahead-", dir=Path.home()))
        target = folder / "stdout.txt"
        try:
            self._write_through(layout, target)
        finally:
            shutil.rmtree(folder)

    def _write_through(self, layout, target):
        with open(target, "w") as handle_out:
            handle, spec = self._ahead(
                BACKEND,
                layout,
                ["sh", "-c", "echo first; echo again >> /dev/stdout"],
                fds={1: handle_out.fileno()},
            )
            outcome = run(spec, handle)
        assert outcome.exit_status == 0, outcome.error
        assert target.read_text() == "first\nagain\n"


def _status_of(pid):
    """``/proc/PID/status`` as name -> value ({} once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in text.splitlines())
    }
