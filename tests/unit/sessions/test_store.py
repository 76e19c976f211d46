from __future__ import annotations

import json

from statetrace_guard.audit.trail import Trail
from statetrace_guard.sessions import store
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


def fresh_fold(log_dir, details=True):
    """The state folded from scratch, as a new process would see it."""
    saved = dict(store._FOLDS)
    store._FOLDS.clear()
    try:
        return load_session(log_dir, SID, details=details)
    finally:
        store._FOLDS.clear()
        store._FOLDS.update(saved)


class TestIncrementalFold:
    """The helper reads only what was appended; the answer never differs."""

    def test_appends_fold_like_a_fresh_read(self, harness):
        trail = Trail(harness.log_dir, SID)
        for number in range(5):
            trail.event("command.started", {"argv": [f"c{number}"]})
            trail.event("command.finished", {"argv": [f"c{number}"], "exit_code": 0})
            for details in (True, False):
                assert load_session(harness.log_dir, SID, details=details) == (
                    fresh_fold(harness.log_dir, details)
                )
        trail.event("session.halted", {"kind": "max_commands", "reason": "r"})
        assert load_session(harness.log_dir, SID).halt is not None
        assert load_session(harness.log_dir, SID).runs_total == 5

    def test_a_line_being_written_waits_for_its_end(self, harness):
        trail = Trail(harness.log_dir, SID)
        trail.event("command.blocked", {})
        path = session_file(harness.log_dir, SID)
        record = json.dumps({"event": "command.blocked", "ts": "2026-01-01T00:00:00Z"})
        with path.open("a") as handle:
            handle.write(record[:10])
        assert load_session(harness.log_dir, SID).blocked_total == 1
        with path.open("a") as handle:
            handle.write(record[10:] + "\n")
        assert load_session(harness.log_dir, SID).blocked_total == 2

    def test_a_rewritten_log_is_folded_again(self, harness):
        """Same inode, other content (a tampered or recovered file)."""
        trail = Trail(harness.log_dir, SID)
        for _ in range(3):
            trail.event("command.blocked", {})
        assert load_session(harness.log_dir, SID).blocked_total == 3
        path = session_file(harness.log_dir, SID)
        lines = path.read_text().splitlines(keepends=True)
        rewritten = [
            line.replace("command.blocked", "command.started") for line in lines
        ]
        with path.open("r+") as handle:  # in place: the inode stays
            handle.write("".join(rewritten) + "".join(rewritten[1:]))
        state = load_session(harness.log_dir, SID)
        assert (state.blocked_total, state.runs_total) == (0, 6)

    def test_a_shorter_log_is_folded_again(self, harness):
        trail = Trail(harness.log_dir, SID)
        for _ in range(3):
            trail.event("command.blocked", {})
        assert load_session(harness.log_dir, SID).blocked_total == 3
        path = session_file(harness.log_dir, SID)
        lines = path.read_bytes().splitlines(keepends=True)
        with path.open("r+b") as handle:
            handle.truncate(sum(len(line) for line in lines[:2]))
        assert load_session(harness.log_dir, SID).blocked_total == 1
