from __future__ import annotations

import dataclasses

import pytest

from statetrace_guard.errors import AuditError, SessionError, UsageError
from statetrace_guard.levels import Level
from statetrace_guard.sessions import lifecycle as lc
from statetrace_guard.sessions.store import load_session


def request(harness, **fields):
    fields.setdefault("task_ids", ("ST-A-001",))
    fields.setdefault("plan", harness.workspace / "docs/plans/PlanA.md")
    return lc.StartRequest(**fields)


class TestStart:
    def test_writes_started_record(self, harness):
        """session.started carries tasks, plan, level, role and the snapshot."""
        sid = lc.start_session(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            request(harness, role="implementer"),
        )
        state = load_session(harness.log_dir, sid)
        assert state.start is not None
        assert state.start.task_ids == ("ST-A-001",)
        assert state.start.plan == "docs/plans/PlanA.md"
        assert state.start.role == "implementer"
        assert state.start.watched == {"Data/StateTraceSettings.json": None}

    @pytest.mark.parametrize("tasks", [(), ("A-1",), ("st-a-001",), ("ST-A-1",)])
    def test_rejects_bad_task_ids(self, harness, tasks):
        """Task ids must be in the StateTrace form."""
        with pytest.raises(UsageError):
            lc.start_session(
                harness.workspace,
                harness.log_dir,
                harness.policy,
                request(harness, task_ids=tasks),
            )

    def test_rejects_missing_plan(self, harness):
        """The plan file must exist."""
        with pytest.raises(SessionError, match="plan file"):
            lc.start_session(
                harness.workspace,
                harness.log_dir,
                harness.policy,
                request(harness, plan=harness.workspace / "nope.md"),
            )

    def test_rejects_start_above_l1(self, harness):
        """L2 and L3 come from an approval, not from start."""
        with pytest.raises(UsageError, match="needs an approval"):
            lc.start_session(
                harness.workspace,
                harness.log_dir,
                harness.policy,
                request(harness, level=Level.L2),
            )

    def test_taskboard(self, harness):
        """--require-taskboard checks the CSV."""
        board = harness.workspace / lc.TASKBOARD_CSV
        req = request(harness, require_taskboard=True)
        with pytest.raises(SessionError, match="cannot read the task board"):
            lc.start_session(harness.workspace, harness.log_dir, harness.policy, req)
        board.parent.mkdir(parents=True)
        board.write_text("ID,Title,Status\nST-B-002,Other,Open\n")
        with pytest.raises(SessionError, match="not on the task board"):
            lc.start_session(harness.workspace, harness.log_dir, harness.policy, req)
        board.write_text("ID,Title,Status\nST-A-001,Routing,Open\n")
        assert lc.start_session(harness.workspace, harness.log_dir, harness.policy, req)

    def test_unwritable_log_dir(self, harness):
        """An unwritable log directory is an audit error."""
        harness.log_dir.write_text("a file, not a directory")
        with pytest.raises(AuditError):
            lc.start_session(
                harness.workspace, harness.log_dir, harness.policy, request(harness)
            )


class TestResolve:
    def test_option_then_variable(self):
        """--session wins, then the variable; neither is a usage error."""
        env = {"STATETRACE_GUARD_SESSION": "2026-01-01_session-0002"}
        assert lc.resolve_session_id("2026-01-01_session-0001", env).endswith("0001")
        assert lc.resolve_session_id(None, env).endswith("0002")
        with pytest.raises(UsageError):
            lc.resolve_session_id(None, {})
        with pytest.raises(UsageError):
            lc.resolve_session_id("../../etc", {})


class TestStatusAndEnd:
    def test_status(self, harness, start):
        """Status shows level, counts, budget and outstanding overrides."""
        sid = start()
        harness.run(sid, ("ls",))
        (harness.workspace / "Data").mkdir()
        (harness.workspace / "Data/StateTraceSettings.json").write_text("{}")
        status = lc.session_status(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            sid,
            {"STATETRACE_THREADS": "2"},
        )
        assert status.level is Level.L1
        assert status.state.runs_total == 1
        assert status.budget["commands"] == "49 left"
        assert [c.kind for c in status.changes] == ["created"]
        assert status.env_overrides == (("STATETRACE_THREADS", "2"),)
        assert status.stopped is None
        assert (status.tests_run, status.test_failures, status.must_stop) == (
            0,
            0,
            None,
        )

    def test_status_before_any_command(self, harness, start):
        """A session whose window has not opened names no start (was "since None")."""
        sid = start()
        state = lc.load_session(harness.log_dir, sid)
        unopened = dataclasses.replace(state, window_start=None)
        left = lc._budget_left(unopened, harness.policy)
        assert left["minutes"].endswith("from the first command")
        assert "since" in lc._budget_left(state, harness.policy)["minutes"]

    def test_status_must_stop(self, harness, start, policy_factory):
        """After max_test_failures failing tests, status says the session must stop."""
        harness.policy = policy_factory(max_test_failures=1)
        sid = start()
        harness.run(sid, ("pytest", "-q"), exit_code=1)
        status = lc.session_status(
            harness.workspace, harness.log_dir, harness.policy, sid, {}
        )
        assert (status.tests_run, status.test_failures) == (1, 1)
        assert status.must_stop is not None
        assert "stop the session" in status.must_stop

    def test_end_require_reset(self, harness, start):
        """--require-reset fails while a watched file differs, then succeeds."""
        sid = start()
        settings = harness.workspace / "Data/StateTraceSettings.json"
        settings.parent.mkdir()
        settings.write_text("{}")
        with pytest.raises(SessionError, match="overrides not reset"):
            lc.end_session(
                harness.workspace,
                harness.log_dir,
                harness.policy,
                sid,
                status="done",
                next_step=None,
                require_reset=True,
            )
        settings.unlink()
        report = lc.end_session(
            harness.workspace,
            harness.log_dir,
            harness.policy,
            sid,
            status="blocked",
            next_step="wait",
            require_reset=True,
        )
        assert report.status == "blocked"
        state = load_session(harness.log_dir, sid)
        assert state.end is not None
        assert state.end.status == "blocked"
        with pytest.raises(SessionError, match="has ended"):
            lc.end_session(
                harness.workspace,
                harness.log_dir,
                harness.policy,
                sid,
                status="done",
                next_step=None,
            )
