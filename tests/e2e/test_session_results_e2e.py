"""Session end tells the truth about test runs: real pytest through guard run.

The failing and passing `pytest | tail -1` runs, and the `set -o pipefail`
one, run twice: in-process and through the resident helper (its launcher's
supervisor runs the program). The test program's own status comes from the
kernel's process events, which need root on Linux; elsewhere the masked run
stays UNKNOWN (tests/unit/sessions/test_testruns.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from resident_helper import wait_for_helper

BIN = str(Path(sys.executable).parent)
PYTEST = "python -m pytest -q -p no:cacheprovider tests"
KERNEL_VIEW = sys.platform.startswith("linux") and os.geteuid() == 0
needs_kernel_view = pytest.mark.skipif(
    not KERNEL_VIEW, reason="the test program's own status needs root on Linux"
)


@pytest.fixture
def env(tmp_path: Path, workspace: Path) -> dict[str, str]:
    (workspace / "docs/plans").mkdir(parents=True)
    (workspace / "docs/plans/PlanA.md").write_text("# Plan A\n")
    (workspace / "tests").mkdir()
    (workspace / "tests/test_app.py").write_text(
        "def test_adds():\n    assert 1 + 1 == 3\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "STATETRACE_GUARD_HOME": str(home / "guard"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture(params=["in-process", "helper"])
def run_path(request, monkeypatch, tmp_path, env, workspace):
    """The in-process path, or the resident helper (started here, ended after)."""
    if request.param == "in-process":
        yield env
        return
    if not sys.platform.startswith("linux"):
        pytest.skip("the resident helper runs on Linux only")
    env = {**env, "STATETRACE_GUARD_DAEMON": "on", "STATETRACE_GUARD_DAEMON_IDLE": "30"}
    monkeypatch.setenv("STATETRACE_GUARD_HOME", env["STATETRACE_GUARD_HOME"])
    elsewhere = tmp_path / "warm-up"
    elsewhere.mkdir()
    for _ in range(2):  # the second run starts the helper
        subprocess.run(
            [sys.executable, "-m", "statetrace_guard", "run", "--", "true"],
            cwd=elsewhere,
            env=env,
            check=True,
            capture_output=True,
        )
    pid = wait_for_helper()
    yield env
    os.kill(pid, signal.SIGKILL)
    supervised = {record["supervised_by"] for record in finished(workspace)}
    assert supervised == {"daemon"}


def finished(workspace: Path) -> list[dict]:
    """The workspace's command.finished records, in order."""
    found = []
    for path in sorted((workspace / "Logs" / "Sessions").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "command.finished":
                found.append(record)
    return found


def session(guard, env) -> dict[str, str]:
    done = guard(
        "session",
        "start",
        "--task",
        "ST-A-001",
        "--plan",
        "docs/plans/PlanA.md",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return {**env, "STATETRACE_GUARD_SESSION": done.stdout.decode().splitlines()[0]}


def end(guard, env, *args: str) -> tuple[str, str]:
    done = guard("session", "end", *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode(), done.stderr.decode()


@needs_kernel_view
def test_failing_pytest_piped_to_tail_is_a_fail(guard, run_path, workspace):
    """`pytest | tail -1` exits 0 with failing tests: FAIL, session failed."""
    env = session(guard, run_path)
    run = guard("run", "--", "bash", "-c", f"{PYTEST} | tail -1", env=env)
    assert run.returncode == 0, run.stderr
    assert b"1 failed" in run.stdout
    tests = finished(workspace)[-1]["test_programs"]
    assert tests == {
        "runs": [{"program": "python -m pytest", "exit_code": 1, "signal": None}],
        "unread": 0,
        "unobserved": None,
    }
    out, err = end(guard, env)
    assert "FAIL  bash -c 'python -m pytest" in out
    assert "python -m pytest's own status: exit 1" in out
    assert "PASS" not in out
    assert "ST-A-001: Failed" in out
    assert "status failed: the last test run failed" in err
    assert "--status done" in err


@needs_kernel_view
def test_passing_pytest_piped_to_tail_is_a_pass(guard, run_path, workspace):
    """The same pipeline over passing tests: PASS on the kernel's word, done."""
    (workspace / "tests/test_app.py").write_text(
        "def test_adds():\n    assert 2 == 2\n"
    )
    env = session(guard, run_path)
    run = guard("run", "--", "bash", "-c", f"{PYTEST} | tail -1", env=env)
    assert run.returncode == 0, run.stderr
    assert b"1 passed" in run.stdout
    out, err = end(guard, env)
    assert "PASS  bash -c 'python -m pytest" in out
    assert "python -m pytest's own status 0, seen by the kernel" in out
    assert "ST-A-001: Done" in out
    assert err == ""


def test_pipefail_makes_it_the_tests_status(guard, run_path):
    """With `set -o pipefail` the failure is pytest's own: FAIL."""
    env = session(guard, run_path)
    script = f"set -o pipefail; {PYTEST} | tail -1"
    run = guard("run", "--", "bash", "-c", script, env=env)
    assert run.returncode == 1
    out, err = end(guard, env)
    assert "FAIL  bash -c 'set -o pipefail;" in out
    assert "status failed: the last test run failed" in err


def test_only_test_commands_are_watched(guard, env, workspace):
    """A command without a test part pays nothing: no test_programs field."""
    env = session(guard, env)
    assert guard("run", "--", "bash", "-c", "true | tail -1", env=env).returncode == 0
    assert "test_programs" not in finished(workspace)[-1]


def test_fixed_and_passing_is_done(guard, env, workspace):
    """A passing last run ends done; --status done over a failure is noted."""
    env = session(guard, env)
    assert guard("run", "--", "bash", "-c", PYTEST, env=env).returncode == 1
    (workspace / "tests/test_app.py").write_text(
        "def test_adds():\n    assert 2 == 2\n"
    )
    assert guard("run", "--", "bash", "-c", PYTEST, env=env).returncode == 0
    out, err = end(guard, env)
    assert "FAIL  bash -c" in out
    assert "PASS  bash -c" in out
    assert "ST-A-001: Done" in out
    assert err == ""
