"""Session jobs (issue 15.4) and the session's loopback (issue 15.5), end to end.

A loopback HTTP server started by ``guard run --background`` answers the
session's next ``guard run -- curl``, in-process and through the resident
helper; another session cannot reach it; ``guard jobs`` lists it, ``guard
jobs stop`` and ``guard session end`` end it, the policy's job budget
refuses one too many, and the session log holds ``job.started`` and
``job.ended`` with the program's figures. Real processes, a real server on
loopback inside the session's namespace; nothing is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from statetrace_guard.daemon import protocol
from statetrace_guard.sandbox.linux import LinuxBackend
from tests.netservers import free_port

CAPS = LinuxBackend().probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or not CAPS.netns or CAPS.landlock_abi < 1 or os.geteuid() != 0,
        reason="a session's network namespace needs root, Landlock and netns",
    ),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

SERVER = ("python3", "-I", "-m", "http.server", "--bind", "127.0.0.1")


def start_session(guard, *policy: str) -> str:
    (guard.cwd / "plan.md").write_text("plan\n")
    done = guard("session", "start", *policy, "--task", "ST-A-001", "--plan", "plan.md")
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()[0].strip()


def end_session(guard, session: str) -> None:
    done = guard("session", "end", "--session", session, "--status", "done")
    assert done.returncode == 0, done.stderr


def start_server(guard, session: str, port: int, *policy: str):
    return guard(
        "run", *policy, "--session", session, "--background", "--", *SERVER, str(port)
    )


def fetch(guard, session: str, port: int):
    url = f"http://127.0.0.1:{port}/"
    return guard("run", "--session", session, "--", "curl", "-sS", "-m", "5", url)


def fetch_when_up(guard, session: str, port: int):
    """Ask until the server answers (it starts in the background)."""
    deadline = time.monotonic() + 30
    while True:
        done = fetch(guard, session, port)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def jobs(guard, session: str) -> list[dict]:
    done = guard("jobs", "--session", session, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def records(guard, session: str, event: str) -> list[dict]:
    log = guard.cwd / "Logs" / "Sessions" / f"{session}.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [row for row in rows if row.get("event") == event]


def gone(pid: int) -> bool:
    deadline = time.monotonic() + 15
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        time.sleep(0.05)
    return not psutil.pid_exists(pid)


def test_a_job_serves_the_sessions_next_command_only(guard):
    """Started, listed, reached by the session only, stopped, recorded."""
    session, other = start_session(guard), start_session(guard)
    port = free_port()
    try:
        started = start_server(guard, session, port)
        assert started.returncode == 0, started.stderr
        assert b"guard: job J1 started" in started.stderr
        answer = fetch_when_up(guard, session, port)
        assert answer.returncode == 0, answer.stderr
        assert b"Directory listing" in answer.stdout
        (listed,) = jobs(guard, session)
        assert listed["id"] == "J1"
        assert listed["status"] == "running"
        assert listed["level"] == "L1"
        assert listed["command"].startswith("python3 -I -m http.server")
        assert psutil.pid_exists(listed["pid"])
        refused = fetch(guard, other, port)
        assert refused.returncode == 7, refused.stderr  # curl: could not connect
        with socket.socket() as outside:  # nor from the machine itself
            assert outside.connect_ex(("127.0.0.1", port)) != 0
        inside = guard("run", "--session", session, "--", "bash", "-c", "guard jobs")
        assert b"J1    running" in inside.stdout, inside.stderr
        stopped = guard("jobs", "--session", session, "stop", "J1")
        assert stopped.returncode == 0, stopped.stderr
        assert gone(listed["pid"])
        (ended,) = jobs(guard, session)
        assert ended["status"] == "ended"
        assert ended["exit_status"] == 128 + signal.SIGTERM
    finally:
        end_session(guard, session)
        end_session(guard, other)
    (job_started,) = records(guard, session, "job.started")
    (job_ended,) = records(guard, session, "job.ended")
    assert job_started["job_id"] == job_ended["job_id"] == "J1"
    assert job_started["level"] == "L1"
    assert job_ended["exit_status"] == job_ended["exit_code"] == 128 + signal.SIGTERM
    assert job_ended["argv"] == job_started["argv"]
    table = guard("log", "--session", session)
    assert b"job J1 ended: python3 -I -m http.server" in table.stdout, table.stderr
    assert job_ended["cpu_user_s"] > 0
    assert job_ended["peak_rss_bytes"] > 0
    finished = [
        r
        for r in records(guard, session, "command.finished")
        if r["started_seq"] == job_started["command_seq"]
    ]
    assert len(finished) == 1
    verified = guard(
        "verify", str(guard.cwd / "Logs" / "Sessions" / f"{session}.jsonl")
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_session_end_ends_its_jobs_and_the_budget_refuses_one_more(guard, tmp_path):
    """[jobs] max_running = 1: a second job is refused; session end ends the first."""
    policy = tmp_path / "jobs.toml"
    policy.write_text(
        'extends = "builtin:statetrace"\nname = "jobs"\n\n[jobs]\nmax_running = 1\n'
    )
    session = start_session(guard, "--policy", str(policy))
    first, second = free_port(), free_port()
    try:
        started = start_server(guard, session, first, "--policy", str(policy))
        assert started.returncode == 0, started.stderr
        refused = start_server(guard, session, second, "--policy", str(policy))
        assert refused.returncode == 126, refused.stderr
        assert b"job budget is used up: 1 of 1 running (J1)" in refused.stderr
        assert fetch_when_up(guard, session, first).returncode == 0
        (job,) = jobs(guard, session)
    finally:
        end_session(guard, session)
    assert gone(job["pid"])
    (ended,) = jobs(guard, session)
    assert ended["status"] == "ended"
    assert len(records(guard, session, "job.ended")) == 1
    home = Path(os.environ["STATETRACE_GUARD_HOME"])
    assert not list((home / "netns").glob("*")) if (home / "netns").exists() else True


def test_background_needs_a_started_session(guard):
    """Nothing would end a job of a plain guard run: usage error, nothing runs."""
    done = guard("run", "--background", "--", "sleep", "30")
    assert done.returncode == 2, done.stderr
    assert b"--background needs a started session" in done.stderr


def test_jobs_off_in_the_policy(guard, tmp_path):
    """[jobs] lowest_level = "never": blocked, nothing started."""
    policy = tmp_path / "nojobs.toml"
    policy.write_text(
        'extends = "builtin:statetrace"\nname = "nojobs"\n\n'
        '[jobs]\nlowest_level = "never"\n'
    )
    session = start_session(guard, "--policy", str(policy))
    try:
        done = guard(
            "run",
            "--policy",
            str(policy),
            "--session",
            session,
            "--background",
            "--",
            "sleep",
            "30",
        )
        assert done.returncode == 126, done.stderr
        assert b"session jobs are allowed at no level" in done.stderr
        assert jobs(guard, session) == []
    finally:
        end_session(guard, session)


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


def wait_for_helper(guard) -> None:
    guard("run", "--", "true")
    guard("run", "--", "true")
    deadline = time.monotonic() + 30
    while _ping() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ping() is not None


@pytest.mark.usefixtures("daemon_env")
def test_through_the_resident_helper(guard):
    """The job starts in-process; the helper's next command reaches it."""
    session = start_session(guard)
    port = free_port()
    try:
        wait_for_helper(guard)
        started = start_server(guard, session, port)
        assert started.returncode == 0, started.stderr
        answer = fetch_when_up(guard, session, port)
        assert answer.returncode == 0, answer.stderr
    finally:
        end_session(guard, session)
    starts = records(guard, session, "command.started")
    assert starts[0]["extra"]["via"] == "in-process"  # the job
    assert starts[-1]["extra"]["via"] == "daemon"  # the curl that reached it


@pytest.mark.parametrize("helper", ["off", "on"])
def test_requests_inside_a_script_are_served(guard, monkeypatch, helper):
    """bash -c 'guard run --background ...', 'guard jobs', 'guard escalate': served.

    How a hook wraps every command; a sandboxed guard could neither start a
    job nor write the request (guard's home is not the program's).
    """
    if helper == "on":
        monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
        monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    session = start_session(guard)
    port = free_port()
    script = f"guard run --background -- {' '.join(SERVER)} {port}"
    try:
        if helper == "on":
            wait_for_helper(guard)
        started = guard("run", "--session", session, "--", "bash", "-c", script)
        assert started.returncode == 0, started.stderr
        assert b"guard: job J1 started" in started.stderr
        assert fetch_when_up(guard, session, port).returncode == 0
        listed = guard("run", "--session", session, "--", "bash", "-c", "guard jobs")
        assert b"J1    running" in listed.stdout, listed.stderr
        asked = guard(
            "run",
            "--session",
            session,
            "--",
            "bash",
            "-c",
            "guard escalate --to L2 --reason 'run the pipeline'",
        )
        assert asked.returncode == 0, asked.stderr
        assert b"escalation requested" in asked.stderr
    finally:
        end_session(guard, session)
        if helper == "on" and (pid := _ping()):
            os.kill(pid, signal.SIGKILL)
    assert [job["status"] for job in jobs(guard, session)] == ["ended"]


def test_the_budget_holds_for_jobs_started_at_once(guard, tmp_path):
    """Two jobs started together under max_running = 1: exactly one starts."""
    import subprocess  # noqa: PLC0415

    policy = tmp_path / "one.toml"
    policy.write_text(
        'extends = "builtin:statetrace"\nname = "one"\n\n[jobs]\nmax_running = 1\n'
    )
    session = start_session(guard, "--policy", str(policy))
    argv = guard.command(
        "run",
        "--policy",
        str(policy),
        "--session",
        session,
        "--background",
        "--",
        "sleep",
        "60",
    )
    try:
        both = [
            subprocess.Popen(argv, cwd=guard.cwd, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        statuses = sorted(process.wait(timeout=60) for process in both)
        for process in both:
            process.stderr.close()
        assert statuses == [0, 126]
        assert [job["status"] for job in jobs(guard, session)] == ["running"]
    finally:
        end_session(guard, session)
    assert [job["status"] for job in jobs(guard, session)] == ["ended"]


def test_no_job_starts_when_its_record_cannot_be_written(guard):
    """The session log's volume read-only: exit 125, nothing running, no job left."""
    import subprocess  # noqa: PLC0415

    logs = guard.cwd / "Logs"
    logs.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(logs)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        session = start_session(guard)
        subprocess.run(["mount", "-o", "remount,ro", str(logs)], check=True)
        try:  # guard's own folders cannot be made: one line, 125 (no traceback)
            plain = guard("run", "--session", session, "--", "true")
            assert plain.returncode == 125, plain.stderr
            assert plain.stderr.startswith(b"error: cannot create "), plain.stderr
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(logs)], check=True)
        for sub in ("NetOps", "Approvals"):  # as a first command would leave them
            (logs / sub).mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(logs)], check=True)
        try:
            done = guard(
                "run", "--session", session, "--background", "--", "sleep", "60"
            )
            assert done.returncode == 125, done.stderr
            assert b"cannot open the lock" in done.stderr
            assert b"started" not in done.stderr
            assert jobs(guard, session) == []
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(logs)], check=True)
        end_session(guard, session)
    finally:
        if subprocess.run(["umount", str(logs)], check=False).returncode:
            subprocess.run(["umount", "-l", str(logs)], check=False)
