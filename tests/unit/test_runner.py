"""The runner on real processes: status, signals, stdio, tree, figures, limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from statetrace_guard.runner import RunOutcome, RunSpec, run

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process supervision tests need Linux"
)

PY = sys.executable
WRAPPER = textwrap.dedent(
    """
    import os, sys
    from statetrace_guard.runner import RunSpec, run
    outcome = run(RunSpec(sys.argv[1:], os.getcwd(), dict(os.environ), grace=1.0))
    sys.exit(outcome.exit_status)
    """
)


def spec(argv, tmp_path, **kwargs):
    return RunSpec(list(argv), str(tmp_path), dict(os.environ), **kwargs)


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


def gone(pid: int) -> bool:
    try:
        with Path(f"/proc/{pid}/stat").open() as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


class TestExitStatus:
    @pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
    def test_accepts_child_status_passthrough(self, tmp_path, code):
        """The child's exit status is the outcome's exit status."""
        outcome = run(spec(["sh", "-c", f"exit {code}"], tmp_path))
        assert outcome.exit_status == code
        assert outcome.returncode == code

    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
    def test_signal_gives_128_plus_n(self, tmp_path, sig):
        """A child killed by signal N gives 128+N."""
        outcome = run(spec(["sh", "-c", f"kill -{int(sig)} $$"], tmp_path))
        assert outcome.exit_status == 128 + sig
        assert outcome.signal == sig
        assert outcome.returncode is None

    def test_not_found_gives_127(self, tmp_path):
        """A program missing from PATH is 127 with not_found set."""
        outcome = run(spec(["no-such-program-xyz"], tmp_path))
        assert outcome.exit_status == 127
        assert outcome.not_found
        assert outcome.error is not None

    def test_empty_argv_gives_127(self, tmp_path):
        """An empty command runs nothing and is 127."""
        assert run(spec([], tmp_path)).exit_status == 127

    def test_not_executable_gives_127(self, tmp_path):
        """A file without execute permission cannot run: 127."""
        script = tmp_path / "s.sh"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o644)
        outcome = run(spec([str(script)], tmp_path))
        assert outcome.exit_status == 127

    def test_setup_failure_gives_125(self, tmp_path):
        """A failing child setup is reported as 125, not as the program's status."""
        outcome = run(spec(["true"], tmp_path / "missing-cwd"))
        assert outcome.exit_status == 125
        assert "setup failed" in (outcome.error or "")

    def test_path_lookup_like_execvp(self, tmp_path):
        """The program is looked up on the spec's PATH, like execvp."""
        bindir = tmp_path / "bin"
        bindir.mkdir()
        tool = bindir / "mytool"
        tool.write_text("#!/bin/sh\nexit 9\n")
        tool.chmod(0o755)
        env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
        outcome = run(RunSpec(["mytool"], str(tmp_path), env))
        assert outcome.exit_status == 9
        assert outcome.executables[0].path == str(tool)

    def test_cwd_and_env_are_the_specs(self, tmp_path):
        """The program runs in spec.cwd with exactly spec.env."""
        out = tmp_path / "out"
        env = {"PATH": os.environ["PATH"], "ONLY": "this"}
        code = f"import os; open({str(out)!r}, 'w').write(os.getcwd() + '|' + ','.join(sorted(os.environ)))"
        run(RunSpec(py(code), str(tmp_path), env))
        cwd, names = out.read_text().split("|")
        assert cwd == str(tmp_path)
        assert "ONLY" in names.split(",")


class TestFastPath:
    def test_quick_program_needs_no_psutil(self):
        """/bin/true is reaped without importing psutil and without a fixed sleep."""
        code = textwrap.dedent(
            """
            import os, sys, time
            from statetrace_guard.runner import RunSpec, run
            best = min(
                run(RunSpec(["/bin/true"], "/", dict(os.environ))).duration_ms
                for _ in range(5)
            )
            print("psutil" in sys.modules, best)
            """
        )
        result = subprocess.run(
            [PY, "-c", code], capture_output=True, text=True, check=True
        )
        loaded, best = result.stdout.split()
        assert loaded == "False"
        assert float(best) < 20.0

    def test_record_has_every_field(self, tmp_path):
        """as_record lists every field of command.finished."""
        record = run(spec(["true"], tmp_path)).as_record()
        assert set(record) == {
            "exit_status",
            "returncode",
            "signal",
            "timed_out",
            "not_found",
            "duration_ms",
            "cpu_user_s",
            "cpu_system_s",
            "peak_rss_bytes",
            "processes",
            "executables",
            "leftover",
            "limit_hit",
            "error",
        }
        assert record["executables"][0]["name"] == "true"


class TestStdio:
    def test_binary_stdin_stdout_passthrough(self, tmp_path):
        """A few MB of arbitrary bytes go through cat unchanged."""
        payload = os.urandom(4 << 20)
        result = subprocess.run(
            [PY, "-c", WRAPPER, "cat"],
            input=payload,
            capture_output=True,
            cwd=tmp_path,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0
        assert result.stdout == payload

    def test_stderr_passthrough(self, tmp_path):
        """stderr is the child's, untouched."""
        result = subprocess.run(
            [PY, "-c", WRAPPER, "sh", "-c", "printf 'e\\0rr' >&2; exit 4"],
            capture_output=True,
            cwd=tmp_path,
            check=False,
            timeout=60,
        )
        assert result.returncode == 4
        assert result.stderr == b"e\0rr"


class TestSignals:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    def test_forwarded_to_child(self, tmp_path, sig):
        """A signal sent to the guard reaches the child, whose status passes through."""
        ready, got = tmp_path / "ready", tmp_path / "got"
        child = textwrap.dedent(
            f"""
            import signal, sys, time
            def handler(signum, frame):
                open({str(got)!r}, "w").write(str(signum))
                sys.exit(7)
            signal.signal({int(sig)}, handler)
            open({str(ready)!r}, "w").write("1")
            time.sleep(30)
            """
        )
        guard = subprocess.Popen([PY, "-c", WRAPPER, PY, "-c", child], cwd=tmp_path)
        wait_for(ready)
        guard.send_signal(sig)
        assert guard.wait(timeout=20) == 7
        assert got.read_text() == str(int(sig))

    def test_sigterm_ignored_is_killed_after_grace(self, tmp_path):
        """A child ignoring a forwarded SIGTERM is killed after the grace period."""
        ready = tmp_path / "ready"
        child = f"""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open({str(ready)!r}, "w").write("1")
            time.sleep(30)
            """
        guard = subprocess.Popen([PY, "-c", WRAPPER, PY, "-c", textwrap.dedent(child)])
        wait_for(ready)
        started = time.monotonic()
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(timeout=20) == 128 + signal.SIGKILL
        assert time.monotonic() - started >= 0.9


class TestTerminal:
    def test_interactive_program_reads_the_terminal(self):
        """With a terminal, the program gets the foreground and can read it."""
        import pty  # noqa: PLC0415 - only this test needs a pseudo-terminal

        pid, master = pty.fork()
        if pid == 0:  # the child: a guard in the foreground of its terminal
            os.execv(PY, [PY, "-c", WRAPPER, "sh", "-c", "read x; echo got:$x"])  # noqa: S606
        os.write(master, b"hello\n")
        output = b""
        deadline = time.monotonic() + 20
        while b"got:hello" not in output and time.monotonic() < deadline:
            try:
                output += os.read(master, 1024)
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        os.close(master)
        assert b"got:hello" in output
        assert os.waitstatus_to_exitcode(status) == 0


class TestTree:
    def test_timeout_ends_stubborn_and_setsid_grandchildren(self, tmp_path):
        """On timeout a SIGTERM-ignoring grandchild and a setsid one are both ended."""
        stubborn, detached = tmp_path / "stubborn", tmp_path / "detached"
        grand1 = f"import os,signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open({str(stubborn)!r},'w').write(str(os.getpid())); time.sleep(100)"
        grand2 = f"import os,time; os.setsid(); open({str(detached)!r},'w').write(str(os.getpid())); time.sleep(100)"
        script = f'{PY} -c "{grand1}" & {PY} -c "{grand2}" & wait'
        outcome = run(spec(["sh", "-c", script], tmp_path, timeout=1.5, grace=0.5))
        assert outcome.exit_status == 124
        assert outcome.timed_out
        for path in (stubborn, detached):
            assert gone(int(wait_for(path)))

    def test_double_forked_daemon_is_ended(self, tmp_path):
        """A daemon left behind by a double fork is ended and listed."""
        pidfile = tmp_path / "daemon"
        code = f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    open({str(pidfile)!r} + ".tmp", "w").write(str(os.getpid()))
                    os.rename({str(pidfile)!r} + ".tmp", {str(pidfile)!r})
                    time.sleep(100)
                os._exit(0)
            while not os.path.exists({str(pidfile)!r}):
                time.sleep(0.005)
            """
        outcome = run(spec(py(code), tmp_path, grace=1.0))
        pid = int(pidfile.read_text())
        assert outcome.exit_status == 0
        assert gone(pid)
        assert pid in {entry["pid"] for entry in outcome.leftover}

    def test_background_allowed_is_left_running(self, tmp_path):
        """allow_background leaves the daemon alone."""
        pidfile = tmp_path / "bg"
        outcome = run(
            spec(
                ["sh", "-c", f"sleep 30 & echo $! > {pidfile}"],
                tmp_path,
                allow_background=True,
            )
        )
        pid = int(wait_for(pidfile))
        try:
            assert outcome.leftover == ()
            assert not gone(pid)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


class TestFigures:
    def test_peak_rss_of_50_mb(self, tmp_path):
        """Allocating 50 MB gives peak_rss >= 45 MB."""
        outcome = run(
            spec(py("import time; b = b'x' * (50 << 20); time.sleep(0.4)"), tmp_path)
        )
        assert outcome.peak_rss_bytes >= 45 << 20

    def test_process_count_and_executables(self, tmp_path):
        """Three started processes give processes >= 4 and sleep among the executables."""
        code = """
            import subprocess
            procs = [subprocess.Popen(["sleep", "0.5"]) for _ in range(3)]
            for p in procs:
                p.wait()
            """
        outcome = run(spec(py(code), tmp_path))
        assert outcome.processes >= 4
        assert "sleep" in {e.name for e in outcome.executables}

    def test_cpu_time(self, tmp_path):
        """A 0.4 s busy loop shows at least 0.25 s of user cpu."""
        code = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
        outcome = run(spec(py(code), tmp_path))
        assert outcome.cpu_user_s + outcome.cpu_system_s >= 0.25
        assert outcome.duration_ms >= 300


class TestLimits:
    def test_max_processes_hit_ends_tree(self, tmp_path):
        """More live processes than max_processes ends the tree and says so."""
        outcome = run(
            spec(
                ["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 5 & done; wait"],
                tmp_path,
                max_processes=3,
            )
        )
        assert outcome.limit_hit == "processes"
        assert outcome.exit_status == 128 + signal.SIGKILL
        assert outcome.duration_ms < 4000

    def test_max_memory_refusal_reported(self, tmp_path):
        """A program refused memory by RLIMIT_AS is reported as a memory hit."""
        code = """
            import sys, time
            chunks = []
            try:
                while True:
                    chunks.append(bytearray(1 << 20))
            except MemoryError:
                time.sleep(0.3)
                sys.exit(3)
            """
        outcome = run(spec(py(code), tmp_path, max_memory=300 << 20))
        assert outcome.exit_status == 3
        assert outcome.limit_hit == "memory"

    def test_no_limit_no_hit(self, tmp_path):
        """Without limits nothing is reported as hit."""
        assert run(spec(["true"], tmp_path)).limit_hit is None


def test_outcome_defaults():
    """RunOutcome needs only the exit status."""
    assert RunOutcome(exit_status=0).leftover == ()
