"""Escape tests: each attack runs for real through ``guard run``.

An attack is a ``python3 -c`` program (the test policy names python3 as an
L1 tool) or a shell command the level allows; the test then asserts that it
failed and that nothing changed outside what the level may write.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from escapes_kit import ESCAPES_POLICY, git

from statetrace_guard.daemon import protocol


@pytest.fixture
def repo(workspace: Path) -> Path:
    """The scratch workspace as a real git repository with one commit."""
    (workspace / ".git").rmdir()
    assert git(workspace, "init", "-q", "-b", "main").returncode == 0
    (workspace / "README.md").write_text("readme\n")
    git(workspace, "add", "README.md")
    assert git(workspace, "commit", "-qm", "init").returncode == 0
    return workspace


@pytest.fixture
def attack(guard):
    """Run ``python3 -c CODE`` through ``guard run`` at a level, in a directory."""

    def run(code: str, *, level: str = "L1", cwd: Path | None = None):
        env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        return guard(
            "run",
            "--level",
            level,
            "--policy",
            ESCAPES_POLICY,
            "--",
            "python3",
            "-c",
            code,
            env=env,
            cwd=cwd,
        )

    return run


def _helper_pid() -> int | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(protocol.socket_path())
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return None


@pytest.fixture
def helper(monkeypatch, tmp_path):
    """The resident helper on for this test (started elsewhere, ended after)."""
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    elsewhere = tmp_path / "warm-up"
    elsewhere.mkdir()
    for _ in range(2):  # the second run starts the helper
        subprocess.run(
            [sys.executable, "-m", "statetrace_guard", "run", "--", "true"],
            cwd=elsewhere,
            check=True,
            capture_output=True,
        )
    deadline = time.monotonic() + 20
    while (pid := _helper_pid()) is None:
        assert time.monotonic() < deadline, "the helper did not start"
        time.sleep(0.05)
    yield pid
    os.kill(pid, signal.SIGKILL)
