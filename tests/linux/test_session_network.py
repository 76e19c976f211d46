"""One network namespace per session below L3 (issue 15.5), on both run paths.

Each program reads which network namespace it is in (``/proc/self/ns/net``):
the commands of one started session share one, another session has its own,
a plain ``guard run`` (no started session) gets one of its own, and
``guard session end`` unmounts and removes the session's.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from statetrace_guard.daemon import protocol
from statetrace_guard.sandbox.linux import LinuxBackend

CAPS = LinuxBackend().probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or not CAPS.netns or CAPS.landlock_abi < 1 or os.geteuid() != 0,
        reason="a session's network namespace needs root, Landlock and netns",
    ),
]


def start_session(guard) -> str:
    (guard.cwd / "plan.md").write_text("plan\n")
    done = guard("session", "start", "--task", "ST-A-001", "--plan", "plan.md")
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()[0].strip()


def namespace_of(guard, session: str | None) -> str:
    where = ("--session", session) if session else ()
    done = guard("run", *where, "--", "readlink", "/proc/self/ns/net")
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


def netns_files() -> list[str]:
    folder = Path(os.environ["STATETRACE_GUARD_HOME"]) / "netns"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def mounted_namespaces() -> int:
    home = os.environ["STATETRACE_GUARD_HOME"]
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return sum(1 for line in handle if f"{home}/netns/" in line)


def end_session(guard, session: str) -> None:
    done = guard("session", "end", "--session", session, "--status", "done")
    assert done.returncode == 0, done.stderr


def test_one_namespace_per_session_and_session_end_removes_it(guard):
    """Commands of a session share one; another session and a plain run do not."""
    first, second = start_session(guard), start_session(guard)
    try:
        one = {namespace_of(guard, first) for _ in range(2)}
        other = namespace_of(guard, second)
        plain = namespace_of(guard, None)
        assert len(one) == 1
        assert other not in one
        assert plain not in one | {other}
        assert mounted_namespaces() == 2
    finally:
        end_session(guard, first)
        end_session(guard, second)
    assert netns_files() == []
    assert mounted_namespaces() == 0


@pytest.fixture
def daemon_env(monkeypatch):
    """Turn the resident helper on for this test; end it afterwards."""
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    yield
    pid = _ping()
    if pid:
        os.kill(pid, signal.SIGKILL)


def _ping() -> int | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(protocol.socket_path())
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return None


@pytest.mark.usefixtures("daemon_env")
def test_through_the_resident_helper(guard):
    """The helper's supervisors join the session's namespace, as the in-process path does."""
    session = start_session(guard)
    try:
        alone = namespace_of(guard, session)  # in-process: no helper yet
        guard("run", "--", "true")
        deadline = time.monotonic() + 30
        while _ping() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ping() is not None
        via_helper = namespace_of(guard, session)
    finally:
        end_session(guard, session)
    assert via_helper == alone
    log = guard.cwd / "Logs" / "Sessions" / f"{session}.jsonl"
    assert '"via":"daemon"' in log.read_text().replace(" ", "")
    assert mounted_namespaces() == 0
