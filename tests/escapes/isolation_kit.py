"""What the isolation escape tests share (issue 12 K1, K2, K5, K10-K13, K15, K16).

Each attack is a program the test policy (``tests/assets/policies/isolation.toml``)
allows at L0, run for real through ``guard run`` on both paths: in-process and
through the resident helper (whose launcher forks the supervisor). Only the
kernel (PID, IPC and UTS namespaces, the capability drop, the seccomp
filter) stands in its way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statetrace_guard.daemon import protocol

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ISOLATION_POLICY = str(ASSETS / "policies" / "isolation.toml")
UNIX_L2_POLICY = str(ASSETS / "policies" / "isolation_unix_l2.toml")
LEVELS = ("L0", "L1", "L2", "L3")
# The seal is the same at every level (only the Unix-socket rule and the
# network differ): attacks run at the least and the most privileged level.
EDGES = ("L0", "L3")
# The venv's interpreter first: the attacks are `python3 -c`, with this
# project importable when a test wants it.
VENV_PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def records(workspace: Path) -> list[dict]:
    """Every record of the workspace's session logs."""
    out = []
    for path in sorted((workspace / "Logs" / "Sessions").glob("*.jsonl")):
        out.extend(
            json.loads(line) for line in path.read_text().splitlines() if line.strip()
        )
    return out


def last(workspace: Path, event: str) -> dict:
    """The last record of ``event``."""
    return [r for r in records(workspace) if r["event"] == event][-1]


def ping() -> int | None:
    """The helper's pid if it answers, else None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(protocol.socket_path())
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return None


def start_helper(elsewhere: Path) -> int:
    """Start the resident helper from a directory of its own; return its pid."""
    elsewhere.mkdir(exist_ok=True)
    for _ in range(2):  # the second run starts it
        subprocess.run(
            [sys.executable, "-m", "statetrace_guard", "run", "--", "true"],
            cwd=elsewhere,
            check=True,
            capture_output=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = ping()
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError("the helper did not start")


@pytest.fixture(params=["in-process", "helper"])
def run_path(request, monkeypatch, tmp_path):
    """Each attack twice: in-process, and through the resident helper."""
    if request.param == "helper":
        monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
        monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
        pid = start_helper(tmp_path / "warm-up")
        yield request.param
        os.kill(pid, signal.SIGKILL)
        return
    yield request.param


def guard_args(
    level: str, argv: list[str], policy: str = ISOLATION_POLICY
) -> list[str]:
    """``guard run`` at ``level`` under ``policy`` for ``argv``."""
    return [
        sys.executable,
        "-m",
        "statetrace_guard",
        "run",
        "--level",
        level,
        "--policy",
        policy,
        "--",
        *argv,
    ]


def attack(
    workspace: Path,
    argv: list[str],
    *,
    level: str = "L0",
    policy: str = ISOLATION_POLICY,
    timeout: float = 90,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` through ``guard run`` in ``workspace``; stdin is empty."""
    return subprocess.run(
        guard_args(level, argv, policy),
        cwd=workspace,
        env={**os.environ, "PATH": VENV_PATH, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def py(code: str) -> list[str]:
    """``python3 -c CODE``."""
    return ["python3", "-c", code]


def assert_via(workspace: Path, run_path: str) -> None:
    """The last command went the way the test meant (helper or in-process)."""
    started = last(workspace, "command.started")
    assert started["extra"]["via"] == (
        "daemon" if run_path == "helper" else "in-process"
    )


def find_program(marker: str, timeout: float = 30.0) -> int:
    """The outer pid of the running ``python3 -c CODE ARGS`` that names ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    words = handle.read().split(b"\0")
            except OSError:
                continue
            if words[:2] == [b"python3", b"-c"] and marker.encode() in b" ".join(
                words[2:]
            ):
                return int(name)
        time.sleep(0.05)
    raise AssertionError(f"no program with {marker!r} found")


def parent_of(pid: int) -> int:
    """The parent pid of ``pid``, as this process sees it."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rpartition(b")")[2].split()[1])


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found
