from __future__ import annotations

import pytest

from statetrace_guard.errors import SessionError
from statetrace_guard.levels import Level
from statetrace_guard.session_ids import allocate_session_id
from statetrace_guard.sessions.approvals import load_book
from statetrace_guard.sessions.escalation import escalate_session, parse_escalation
from statetrace_guard.sessions.lifecycle import end_session


class TestParse:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (
                ("guard", "escalate", "--to", "L2", "--reason", "run it"),
                (Level.L2, "run it"),
            ),
            (
                ("/venv/bin/guard", "escalate", "--reason=why", "--to=l3"),
                (Level.L3, "why"),
            ),
            (
                ("GUARD.EXE", "escalate", "--to", "L2", "--reason", " x "),
                (Level.L2, "x"),
            ),
        ],
    )
    def test_accepts_plain_requests(self, argv, expected):
        """The plain form, in any option order, by name or path."""
        assert parse_escalation(argv) == expected

    @pytest.mark.parametrize(
        "argv",
        [
            (),
            ("guard",),
            ("guard", "approve", "req-1"),
            ("guard", "escalate", "--to", "L1", "--reason", "x"),
            ("guard", "escalate", "--to", "L2"),
            ("guard", "escalate", "--to", "L2", "--reason", " "),
            ("guard", "escalate", "--to", "L2", "--reason"),
            ("guard", "escalate", "--to", "L2", "--to", "L3", "--reason", "x"),
            ("guard", "escalate", "--to", "L2", "--reason", "x", "--session", "s"),
            ("guardian", "escalate", "--to", "L2", "--reason", "x"),
            ("bash", "escalate", "--to", "L2", "--reason", "x"),
        ],
    )
    def test_rejects_anything_else(self, argv):
        """Anything but the plain form goes through classification instead."""
        assert parse_escalation(argv) is None


class TestEscalateSession:
    def test_records_pending_request(self, harness, start):
        """A started session's request carries its task and plan."""
        sid = start()
        rid = escalate_session(harness.log_dir, sid, Level.L2, "pipeline")
        request = load_book(harness.workspace).requests[rid]
        assert (request.session_id, request.level) == (sid, Level.L2)
        assert request.task_ids == ("ST-A-001",)
        assert request.plan == "docs/plans/PlanA.md"
        last = (
            (harness.log_dir / "Sessions" / f"{sid}.jsonl").read_text().splitlines()[-1]
        )
        assert '"event":"session.escalated"' in last
        assert rid in last

    def test_rejects_missing_ended_and_ad_hoc(self, harness, start):
        """Only an open, started session can be escalated."""
        with pytest.raises(SessionError, match="does not exist"):
            escalate_session(harness.log_dir, "2026-01-01_session-0077", Level.L2, "x")
        ad_hoc = allocate_session_id(harness.log_dir / "Sessions")
        with pytest.raises(SessionError, match="not started"):
            escalate_session(harness.log_dir, ad_hoc, Level.L2, "x")
        sid = start()
        end_session(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            sid,
            status="done",
            next_step=None,
        )
        with pytest.raises(SessionError, match="has ended"):
            escalate_session(harness.log_dir, sid, Level.L2, "x")
