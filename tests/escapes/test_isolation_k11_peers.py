"""K11: the helper and operator commands act only for processes they can place.

The issue's attack: an orphan of a guarded tree (parent pid 1, environment
scrubbed) ran ``env -i ... guard run --level L3`` and the helper served it;
``guard approve`` passed the operator check from it. Inside the sandbox it
can no longer reach the helper at all (K1), and an orphan cannot leave the
program's PID namespace; these tests show the checks that stand behind:
the helper sends a client in another PID namespace, or one whose parent is
PID 1, to the in-process path (it lends none of its own authority), and
operator commands refuse a process whose session ancestry is unknown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from isolation_kit import last, ping, start_helper

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="PID namespaces are Linux"),
]
needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None, reason="util-linux unshare is installed by .ci/run"
)


@pytest.fixture
def helper(monkeypatch, tmp_path):
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    pid = start_helper(tmp_path / "warm-up")
    yield pid
    os.kill(pid, 9)


def guard(*args: str) -> list[str]:
    return [sys.executable, "-m", "statetrace_guard", *args]


def orphan(argv: list[str], cwd: Path, out: Path) -> int:
    """Start ``argv`` as an orphan (its parent exits at once); return its pid."""
    pidfile = cwd / "orphan.pid"
    script = 'exec "$@" > "$OUT" 2>&1 < /dev/null & echo $! > "$PIDFILE"'
    subprocess.run(
        ["sh", "-c", script, "sh", *argv],
        cwd=cwd,
        env={**os.environ, "OUT": str(out), "PIDFILE": str(pidfile)},
        check=True,
    )
    return int(pidfile.read_text())


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rpartition(b")")[2].split()[1])
    except OSError:
        return None


def wait_gone(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if parent_pid(pid) is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"{pid} still running")


class TestHelper:
    @needs_unshare
    def test_a_client_in_another_pid_namespace_is_not_served(self, helper, workspace):
        """Its run goes in-process: the helper writes nothing for it."""
        result = subprocess.run(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                *guard("run", "--level", "L0", "--", "true"),
            ],
            cwd=workspace,
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert last(workspace, "command.started")["extra"]["via"] == "in-process"
        assert ping() == helper  # still there, still serving others
        again = subprocess.run(
            guard("run", "--level", "L0", "--", "true"), cwd=workspace, check=False
        )
        assert again.returncode == 0
        assert last(workspace, "command.started")["extra"]["via"] == "daemon"

    def test_an_orphan_is_not_served(self, helper, workspace, tmp_path):
        """A client whose parent is PID 1 has no ancestry to check: in-process."""
        pid = orphan(
            [
                *guard("run", "--level", "L0", "--", "sh", "-c", "sleep 1"),
            ],
            workspace,
            tmp_path / "out",
        )
        time.sleep(0.3)
        if parent_pid(pid) not in (1, None):
            pytest.skip("orphans are adopted by a subreaper here, not PID 1")
        wait_gone(pid)
        assert last(workspace, "command.started")["extra"]["via"] == "in-process"
        assert ping() == helper


class TestOperator:
    def test_an_orphan_cannot_approve(self, workspace, tmp_path):
        """guard approve from a process whose parent is PID 1 is refused."""
        out = tmp_path / "out"
        pid = orphan(
            [
                "sh",
                "-c",
                f"sleep 0.5; exec {' '.join(guard('approve', 'req-00000000'))}",
            ],
            workspace,
            out,
        )
        time.sleep(0.2)
        if parent_pid(pid) not in (1, None):
            pytest.skip("orphans are adopted by a subreaper here, not PID 1")
        wait_gone(pid)
        text = out.read_text()
        assert "operator action and is refused" in text
        assert "session ancestry cannot be established" in text

    def test_the_operators_own_shell_may_act(self, workspace):
        """From an ordinary process tree the check passes (the request is unknown)."""
        result = subprocess.run(
            guard("approve", "req-00000000"),
            cwd=workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "operator action" not in result.stderr
