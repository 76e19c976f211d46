from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from statetrace_guard.audit.chain import verify_lines
from statetrace_guard.errors import SessionError, UsageError
from statetrace_guard.levels import Level
from statetrace_guard.paths import guard_home
from statetrace_guard.sessions import approvals as ap

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ask(workspace, level=Level.L2, session="2026-01-01_session-0001"):
    return ap.request_escalation(
        workspace,
        session_id=session,
        level=level,
        reason="run the pipeline",
        task_ids=("ST-A-001",),
        plan="docs/plans/PlanA.md",
    )


class TestStore:
    def test_store_lives_in_guard_home(self, workspace):
        """The store is under guard's home, outside the workspace."""
        path = ap.approvals_path(workspace)
        assert path.parent == guard_home() / "approvals"
        assert workspace not in path.parents

    def test_request_grant_round_trip(self, workspace):
        """A request, then its approval, read back with scope and user."""
        rid = ask(workspace)
        book = ap.load_book(workspace)
        assert book.status(rid) == "pending"
        assert [r.request_id for r in book.pending()] == [rid]
        assert book.requests[rid].task_ids == ("ST-A-001",)
        grant = ap.grant_request(
            workspace,
            rid,
            now=T0,
            expires=timedelta(hours=2),
            max_commands=3,
            hosts=("GitHub.com",),
        )
        assert grant.expires_at == "2026-01-01T14:00:00.000Z"
        assert grant.hosts == ("github.com",)
        assert grant.user == ap.operator_user()
        book = ap.load_book(workspace)
        assert book.status(rid) == "approved"
        assert book.pending() == []

    def test_store_is_chained(self, workspace):
        """Every store line chains to the one before."""
        rid = ask(workspace)
        ap.grant_request(workspace, rid, now=T0)
        lines = ap.approvals_path(workspace).read_bytes().splitlines(keepends=True)
        verdict = verify_lines(lines)
        assert verdict.intact
        assert verdict.records == 3

    def test_deny_and_revoke(self, workspace):
        """Deny answers a request; denying an approval revokes it."""
        first, second = ask(workspace), ask(workspace)
        assert ap.deny_request(workspace, first, "no") == "denied"
        ap.grant_request(workspace, second, now=T0)
        assert ap.deny_request(workspace, second) == "revoked"
        book = ap.load_book(workspace)
        assert book.status(first) == "denied"
        assert book.in_force("2026-01-01_session-0001", T0, {}) is None

    @pytest.mark.parametrize("answer", ["approve", "deny"])
    def test_rejects_answering_twice(self, workspace, answer):
        """An answered request cannot be approved again."""
        rid = ask(workspace)
        ap.deny_request(workspace, rid)
        again = (
            (lambda: ap.grant_request(workspace, rid, now=T0))
            if answer == "approve"
            else (lambda: ap.deny_request(workspace, rid))
        )
        with pytest.raises(SessionError, match="already denied"):
            again()

    def test_rejects_unknown_request(self, workspace):
        """Approving or denying an unknown id fails."""
        with pytest.raises(SessionError, match="no request"):
            ap.grant_request(workspace, "req-00000000", now=T0)
        with pytest.raises(SessionError, match="no request"):
            ap.deny_request(workspace, "req-00000000")

    def test_rejects_bad_requests(self, workspace):
        """Only L2/L3 with a reason; hosts must be host names."""
        with pytest.raises(UsageError):
            ask(workspace, level=Level.L1)
        with pytest.raises(UsageError):
            ap.request_escalation(workspace, session_id="s", level=Level.L2, reason=" ")
        rid = ask(workspace)
        with pytest.raises(UsageError, match="host"):
            ap.grant_request(workspace, rid, now=T0, hosts=("http://x/y",))

    def test_malformed_records_grant_nothing(self, workspace):
        """A line without the fields a grant needs is skipped."""
        path = ap.approvals_path(workspace)
        path.parent.mkdir(parents=True)
        path.write_text(
            '{"event":"approval.granted","ts":"2026-01-01T00:00:00.000Z"}\nnot json\n'
        )
        assert ap.load_book(workspace).grants == {}


class TestInForce:
    def test_expiry_and_use_count(self, workspace):
        """An approval ends at its expiry or when its commands are used."""
        rid = ask(workspace)
        ap.grant_request(
            workspace, rid, now=T0, expires=timedelta(minutes=30), max_commands=2
        )
        book = ap.load_book(workspace)
        sid = "2026-01-01_session-0001"
        assert book.in_force(sid, T0, {}) is not None
        assert book.in_force(sid, T0, {rid: 1}) is not None
        assert book.in_force(sid, T0, {rid: 2}) is None
        assert book.in_force(sid, T0 + timedelta(minutes=30), {}) is None

    def test_highest_level_wins(self, workspace):
        """Of two live approvals the higher level is in force."""
        low, high = ask(workspace), ask(workspace, level=Level.L3)
        ap.grant_request(workspace, low, now=T0)
        ap.grant_request(workspace, high, now=T0)
        grant = ap.load_book(workspace).in_force("2026-01-01_session-0001", T0, {})
        assert grant is not None
        assert grant.level is Level.L3


class TestDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1d", 86400),
            ("15", 900),
            ("1.5H", 5400),
        ],
    )
    def test_accepts(self, text, seconds):
        """Durations in s, m, h, d; a bare number is minutes."""
        assert ap.parse_duration(text).total_seconds() == seconds

    @pytest.mark.parametrize("text", ["", "0h", "-1h", "2w", "soon"])
    def test_rejects(self, text):
        """Anything else is a usage error."""
        with pytest.raises(UsageError):
            ap.parse_duration(text)
