"""Session end tells the truth about test runs: real pytest through guard run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BIN = str(Path(sys.executable).parent)
PYTEST = "python -m pytest -q -p no:cacheprovider tests"


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


def test_pytest_piped_to_tail_is_not_a_pass(guard, env):
    """`pytest | tail -1` exits 0 with failing tests: UNKNOWN, session failed."""
    env = session(guard, env)
    run = guard("run", "--", "bash", "-c", f"{PYTEST} | tail -1", env=env)
    assert run.returncode == 0, run.stderr
    assert b"1 failed" in run.stdout
    out, err = end(guard, env)
    assert "UNKNOWN  bash -c 'python -m pytest" in out
    assert "exit 0 may come from `tail -1`" in out
    assert "PASS" not in out
    assert "ST-A-001: Failed" in out
    assert "status failed: the last test run has no known result" in err
    assert "--status done" in err


def test_pipefail_makes_it_the_tests_status(guard, env):
    """With `set -o pipefail` the failure is pytest's own: FAIL."""
    env = session(guard, env)
    script = f"set -o pipefail; {PYTEST} | tail -1"
    run = guard("run", "--", "bash", "-c", script, env=env)
    assert run.returncode == 1
    out, err = end(guard, env)
    assert "FAIL  bash -c 'set -o pipefail;" in out
    assert "status failed: the last test run failed" in err


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
