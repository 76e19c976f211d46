from __future__ import annotations

import json

from statetrace_guard.audit.trail import Trail
from statetrace_guard.sessions.store import load_session, read_records, session_file

SID = "2026-01-01_session-0001"


class TestStore:
    def test_missing(self, harness):
        """No file: the session does not exist."""
        assert not load_session(harness.log_dir, SID).exists

    def test_tolerant_reading(self, harness):
        """Malformed lines and invalid started records are skipped."""
        trail = Trail(harness.log_dir, SID)
        trail.event("session.started", {"task_ids": "not a list"})
        trail.event("session.halted", {"kind": "max_commands", "reason": "r"})
        path = session_file(harness.log_dir, SID)
        with path.open("a") as handle:
            handle.write("garbage\n[1]\n")
        state = load_session(harness.log_dir, SID)
        assert state.exists
        assert state.start is None
        assert state.halt is not None
        assert state.halt.kind == "max_commands"
        assert len(list(read_records(path))) == 3
        assert list(read_records(harness.log_dir / "none.jsonl")) == []

    def test_resume_resets_window(self, harness):
        """After session.resumed the counts start again."""
        trail = Trail(harness.log_dir, SID)
        trail.event("command.blocked", {})
        trail.event("session.denial", {"intent": ["a:read"], "argv": ["a"]})
        trail.event("session.ended", {"status": 3})
        state = load_session(harness.log_dir, SID)
        assert (state.blocked_since, len(state.denials_since)) == (1, 1)
        assert state.end is not None
        trail.event("session.resumed", {})
        state = load_session(harness.log_dir, SID)
        assert (state.blocked_total, state.blocked_since) == (1, 0)
        assert state.denials_since == ()
        assert (
            json.loads(session_file(harness.log_dir, SID).read_text().splitlines()[0])[
                "event"
            ]
            == "log.header"
        )


class TestCountOnly:
    def test_same_counts_without_details(self, harness):
        """The run path's count-only read agrees with the full read."""
        trail = Trail(harness.log_dir, SID)
        trail.event("command.started", {"argv": ['"event":"command.blocked"']})
        trail.event("command.finished", {"argv": ["x"], "exit_code": 3})
        trail.event("command.blocked", {"argv": ["y"]})
        trail.event("session.denial", {"intent": ["a:read"], "argv": ["y"]})
        full = load_session(harness.log_dir, SID)
        lean = load_session(harness.log_dir, SID, details=False)
        assert (full.runs_total, full.blocked_total) == (1, 1)
        assert (lean.runs_total, lean.blocked_total) == (1, 1)
        assert len(lean.denials_since) == 1
        assert full.finished[0].exit_code == 3
        assert lean.finished == ()
