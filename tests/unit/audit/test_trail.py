"""The Trail facade: what guard run writes, through structlog or directly."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit.record import (
    DEFAULT_REGISTRY,
    BlockedRecord,
    FinishedRecord,
    StartedRecord,
)
from statetrace_guard.audit.trail import Trail, jsonable, session_path
from statetrace_guard.audit.verify import verify_file
from statetrace_guard.errors import AuditError

EVERY_RECORD = {
    "schema_version",
    "ts",
    "event",
    "session_id",
    "task_id",
    "level",
    "seq",
    "argv",
    "cwd",
    "pid",
    "effects",
    "decision",
    "reasons",
    "rules",
    "policy_sha256",
    "guard_version",
    "prev_sha256",
    "sha256",
}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("front", ["structlog", "direct"])
def test_command_records(log_dir, front):
    """started, finished and blocked carry every session-log field and validate."""
    trail = Trail(log_dir, "s1", front=front)
    facts = make_facts()
    trail.started(facts, {"landlock": "v4", "netns": "on"})
    trail.finished(
        facts,
        {
            "exit_code": 0,
            "signal": None,
            "duration_ms": 5.5,
            "timed_out": False,
            "cpu_user_s": 0.01,
            "peak_rss_bytes": 1024,
            "executables": ["/bin/ls"],
        },
    )
    trail.blocked(make_facts(decision="block", reasons=("L0 is read-only",)))
    path = session_path(log_dir, "s1")
    header, started, finished, blocked = read(path)
    assert header["purpose"] == "session"
    assert header["session_id"] == "s1"
    for record in (started, finished, blocked):
        assert set(record) >= EVERY_RECORD
        assert record["ts"].endswith("Z")
        assert len(record["ts"]) == 24
    assert isinstance(DEFAULT_REGISTRY.parse(started), StartedRecord)
    assert isinstance(DEFAULT_REGISTRY.parse(finished), FinishedRecord)
    assert isinstance(DEFAULT_REGISTRY.parse(blocked), BlockedRecord)
    assert started["enforcement"] == {"landlock": "v4", "netns": "on"}
    assert finished["peak_rss_bytes"] == 1024
    assert verify_file(path).ok


def test_fronts_write_identical_records(tmp_path):
    """structlog and the direct pipeline give the same record, byte for byte."""
    fixed = "2026-05-01T10:00:00.000Z"
    lines = []
    for front in ("structlog", "direct"):
        log_dir = tmp_path / front
        Trail(log_dir, "s1", front=front, clock=lambda: fixed).started(
            make_facts(("curl", "-u", "a:secret99", "https://x")), {}
        )
        lines.append(session_path(log_dir, "s1").read_bytes())
    assert lines[0] == lines[1]


def test_generic_event(log_dir):
    """Later issues add events with Trail.event; the chain and schema hold."""
    trail = Trail(log_dir, "s1")
    written = trail.event("session.started", {"operator": "ops", "budget": 100})
    assert written["event"] == "session.started"
    assert written["seq"] == 1
    assert "pid" in written
    assert written["session_id"] == "s1"
    assert verify_file(session_path(log_dir, "s1")).ok


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 200])
def test_rejects_bad_session_id(log_dir, bad):
    """A session id must be a safe file name."""
    with pytest.raises(AuditError):
        Trail(log_dir, bad)


def test_rejects_reserved_fields(log_dir):
    """Outcome and event fields cannot overwrite command or chain fields."""
    trail = Trail(log_dir, "s1")
    with pytest.raises(ValueError, match="argv"):
        trail.finished(make_facts(), {"exit_code": 0, "duration_ms": 1, "argv": []})
    with pytest.raises(ValueError, match="seq"):
        trail.event("x.y", {"seq": 5})


def test_started_raises_when_unwritable(tmp_path):
    """If command.started cannot be written, AuditError (guard run exits 125)."""
    blocker = tmp_path / "Logs"
    blocker.write_text("not a directory")
    with pytest.raises(AuditError):
        Trail(blocker, "s1").started(make_facts(), {})


def test_jsonable():
    """Tuples, sets and paths become JSON types; unknown objects strings."""
    assert jsonable({"a": (1, 2), "b": {3, 1}, "c": Path("/x"), "d": object}) == {
        "a": [1, 2],
        "b": [1, 3],
        "c": "/x",
        "d": str(object),
    }


def test_record_path_does_not_import_heavy_modules(tmp_path):
    """The direct front writes records without pydantic, structlog or click."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from statetrace_guard.audit.trail import Trail, CommandFacts\n"
        f"t = Trail(Path({str(tmp_path)!r}), 's', front='direct')\n"
        "t.event('x.y', {})\n"
        "print(sorted(m for m in ('pydantic', 'structlog', 'click') if m in sys.modules))"
    )
    import subprocess  # noqa: PLC0415

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@contextlib.contextmanager
def _lock_held(log_dir: Path, session_id: str = "s1"):
    """The session log's lock, held the way another guard process holds it."""
    fd = os.open(f"{session_path(log_dir, session_id)}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def _finishes(log_dir: Path) -> list[dict[str, Any]]:
    records = read(session_path(log_dir, "s1"))
    return [r for r in records if r["event"] == "command.finished"]


@pytest.mark.skipif(sys.platform != "linux", reason="flock: the POSIX lock")
class TestFinishOnce:
    """A finish kept in guard's home counts: no second finish for its start."""

    def test_finish_after_a_kept_finish_of_the_same_start(self, log_dir):
        """The kept finish goes in; the later one for that start is present."""
        facts = make_facts()
        start = Trail(log_dir, "s1").started(facts, {})
        outcome = {"exit_code": 3, "duration_ms": 1.0}
        with _lock_held(log_dir):
            kept = Trail(log_dir, "s1", lock_timeout=0.05).finished(
                facts, outcome | {"recorded_by": "client"}, start
            )
        assert kept == "parked"
        assert Trail(log_dir, "s1").finished(facts, outcome, start) == "present"
        (finish,) = _finishes(log_dir)
        assert finish["started_seq"] == start.seq
        assert finish["recorded_by"] == "client"
        assert verify_file(session_path(log_dir, "s1")).ok

    def test_abandoned_start_with_a_kept_finish(self, log_dir):
        """A helper's start whose finish is kept is not finished again as not run."""
        facts = make_facts(pid=777, extra={"via": "daemon"})
        start = Trail(log_dir, "s1").started(facts, {})
        with _lock_held(log_dir):
            Trail(log_dir, "s1", lock_timeout=0.05).finished(
                facts, {"exit_code": 0, "duration_ms": 1.0}, start
            )
        assert Trail(log_dir, "s1").finish_abandoned(777, "helper gone") == 0
        (finish,) = _finishes(log_dir)
        assert finish["exit_code"] == 0
