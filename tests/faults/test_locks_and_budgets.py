"""Session locks held too long, budgets under contention, deadlines, signals."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from faultlib import Fleet


def _hold_lock(fleet: Fleet, session: str) -> int:
    """Take a session log's lock the way every guard does (whole-file flock)."""
    lock = fleet.workspace / "Logs" / "Sessions" / f"{session}.jsonl.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _policy(fleet: Fleet, text: str) -> Path:
    path = fleet.workspace / "guard.toml"
    path.write_text('schema_version = 1\nname = "faults"\n' + text)
    return path


@pytest.mark.parametrize("path", ["helper", "in-process"])
def test_a_lock_held_past_the_timeout_loses_no_finish(fleet, path):
    """The finish waits in guard's home while the lock is held; it lands after."""
    _policy(fleet, "[settings]\nlock_timeout_seconds = 1.0\n")
    env = {"STATETRACE_GUARD_DAEMON": "on" if path == "helper" else "off"}
    if path == "helper":
        fleet.start_helper()
    session = fleet.start_session()
    token = os.urandom(5).hex()
    client = fleet.client(
        "--session",
        session,
        "--",
        *fleet.token_command(token, sleep=1.5),
        token=token,
        **env,
    )
    time.sleep(1.0)
    held = _hold_lock(fleet, session)
    try:
        client.finish(timeout=90)
        assert client.status == 0, client.stderr
        assert "kept in guard's home" in client.stderr
        # Meanwhile nothing can start in that session: 125, nothing ran.
        refused = fleet.guard("run", "--session", session, "--", "true", **env)
        assert refused.returncode == 125
    finally:
        os.close(held)
    assert fleet.guard("run", "--session", session, "--", "true", **env).returncode == 0
    counts = fleet.check([client])
    assert counts["finishes"] == counts["starts"]


def test_a_stuck_session_lock_does_not_stall_other_sessions(fleet):
    """With session A's lock held, session B is served as fast as ever."""
    fleet.start_helper()
    stuck = fleet.start_session()
    other = fleet.start_session()
    held = _hold_lock(fleet, stuck)
    try:
        waiting = fleet.client("--session", stuck, "--", "true")
        time.sleep(0.5)  # it is now waiting for A's lock in the helper
        began = time.monotonic()
        for _ in range(3):
            assert fleet.guard("run", "--session", other, "--", "true").returncode == 0
        per_command = (time.monotonic() - began) / 3
        assert per_command < 5.0, per_command  # the lock timeout is 10 s
    finally:
        os.close(held)
    waiting.finish(timeout=60)
    assert waiting.status in {0, 125}


def test_budget_admission_is_atomic(fleet):
    """16 processes x 3 runs against max_commands 20 start exactly 20 (in-process)."""
    _policy(fleet, "[settings]\nmax_commands = 20\n")
    session = fleet.start_session()
    clients = [
        fleet.client("--session", session, "--", "true", STATETRACE_GUARD_DAEMON="off")
        for _ in range(16)
    ]
    for client in clients:
        client.finish(timeout=120)
    clients = [
        fleet.client("--session", session, "--", "true", STATETRACE_GUARD_DAEMON="off")
        for _ in range(32)
    ]
    for client in clients:
        client.finish(timeout=120)
    starts = [
        r
        for records in fleet.records().values()
        for r in records
        if r["event"] == "command.started" and r["session_id"] == session
    ]
    assert len(starts) == 20


@pytest.fixture
def wedged(fleet):
    """A listener at the helper's socket that accepts and never answers."""
    from statetrace_guard.daemon import protocol  # noqa: PLC0415

    os.environ["STATETRACE_GUARD_HOME"] = str(fleet.home)
    try:
        path = protocol.socket_path()
    finally:
        del os.environ["STATETRACE_GUARD_HOME"]
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()
        os.unlink(path)


def test_a_wedged_helper_costs_one_deadline_then_runs_in_process(fleet, wedged):
    """A helper that accepts and never answers: the client runs in-process, recorded."""
    began = time.monotonic()
    result = fleet.guard("run", "--", "sh", "-c", "exit 4")
    took = time.monotonic() - began
    assert result.returncode == 4
    assert "did not answer" in result.stderr
    assert took < fleet.wait + 30
    (start,) = [
        r
        for records in fleet.records().values()
        for r in records
        if r["event"] == "command.started"
    ]
    assert start["extra"]["via"] == "in-process"
    assert "did not answer" in start["extra"]["fallback"]


def test_a_signal_before_the_start_ends_the_client_at_once(fleet, wedged):
    """SIGTERM to a client still waiting for the helper: it ends now, nothing runs."""
    from statetrace_guard.daemon import protocol  # noqa: PLC0415

    token = os.urandom(5).hex()
    client = fleet.client(
        "--",
        *fleet.token_command(token),
        token=token,
        STATETRACE_GUARD_DAEMON_WAIT="120",
    )
    conn, _ = wedged.accept()
    with conn:
        protocol.recv_message(conn)  # its request is out: it waits for us
        began = time.monotonic()
        client.proc.send_signal(signal.SIGTERM)
        client.finish(timeout=30)
    assert time.monotonic() - began < 5
    assert client.status == 128 + signal.SIGTERM
    assert not (fleet.workspace / "tokens").exists()
    assert not fleet.records()


def test_session_end_waits_for_running_commands(fleet):
    """Ending a session while a command runs: it waits, or warns and says which."""
    session = fleet.start_session()
    fleet.start_helper()
    token = os.urandom(5).hex()
    client = fleet.client(
        "--session", session, "--", *fleet.token_command(token, sleep=2), token=token
    )
    time.sleep(1.0)
    ended = fleet.guard("session", "end", "--session", session)
    assert ended.returncode == 0, ended.stderr
    client.finish(timeout=60)
    events = [
        r["event"]
        for r in fleet.records()[
            fleet.workspace / "Logs" / "Sessions" / f"{session}.jsonl"
        ]
    ]
    assert events.index("command.finished") < events.index("session.ended")
    long_token = os.urandom(5).hex()
    other = fleet.start_session()
    slow = fleet.client(
        "--session",
        other,
        "--",
        *fleet.token_command(long_token, sleep=20),
        token=long_token,
    )
    time.sleep(1.0)
    ended = fleet.guard("session", "end", "--session", other)
    assert "still running" in ended.stderr
    slow.finish(timeout=60)
    records = fleet.records()[fleet.workspace / "Logs" / "Sessions" / f"{other}.jsonl"]
    (end,) = [r for r in records if r["event"] == "session.ended"]
    (start,) = [r for r in records if r["event"] == "command.started"]
    assert end["running"] == [start["seq"]]


def test_a_finish_kept_by_the_client_is_not_written_again_by_the_helper(fleet):
    """Helper stopped, lock held: the client keeps the finish; the helper adds none.

    The client takes over the finish while the helper is stopped, cannot get
    the log's lock and keeps the finish in guard's home. The resumed helper
    then records the supervisor's outcome: the kept finish goes in first and
    the helper's own must not follow it (one finish per start).
    """
    session = fleet.start_session()
    helper = fleet.start_helper()
    token = os.urandom(5).hex()
    client = fleet.client(
        "--session", session, "--", *fleet.token_command(token, sleep=2), token=token
    )
    path = fleet.workspace / "Logs" / "Sessions" / f"{session}.jsonl"
    deadline = time.monotonic() + 30
    while b'"command.started"' not in path.read_bytes()[-8192:]:
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.01)
    time.sleep(0.5)  # the client said "go": the program runs under a supervisor
    fleet.stop(helper)
    held = _hold_lock(fleet, session)
    try:
        client.finish(timeout=90)  # outcome in hand, no helper: it keeps it
    finally:
        os.close(held)
    assert client.status == 0, client.stderr
    assert "kept in guard's home" in client.stderr
    fleet.resume_all()
    time.sleep(1.5)  # the helper records the supervisor's outcome it held
    assert fleet.guard("run", "--session", session, "--", "true").returncode == 0
    counts = fleet.check([client])
    assert counts["finishes"] == counts["starts"]
