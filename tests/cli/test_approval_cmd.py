from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from statetrace_guard.cli import main
from statetrace_guard.session_ids import allocate_session_id


@pytest.fixture
def cli(workspace):
    (workspace / "docs/plans").mkdir(parents=True)
    (workspace / "docs/plans/PlanA.md").write_text("plan\n")
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def session(cli):
    result = cli(
        "session", "start", "--task", "ST-A-001", "--plan", "docs/plans/PlanA.md"
    )
    return result.output.splitlines()[0]


def escalate(cli, sid, level="L2"):
    result = cli(
        "escalate",
        "--to",
        level,
        "--reason",
        "pipeline run",
        env={"STATETRACE_GUARD_SESSION": sid},
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


class TestFlow:
    def test_escalate_approve_list(self, cli, session):
        """escalate -> pending -> approve -> approved, and status shows L2."""
        rid = escalate(cli, session)
        pending = cli("approvals", "--pending")
        assert rid in pending.output
        assert "pending" in pending.output
        approved = cli(
            "approve",
            rid,
            "--expires",
            "2h",
            "--max-commands",
            "3",
            "--hosts",
            "github.com",
        )
        assert approved.exit_code == 0, approved.output
        assert f"approved {rid}" in approved.output
        assert (
            cli("approvals", "--pending")
            .output.strip()
            .startswith("no pending requests for workspace ")
        )
        rows = [
            json.loads(line) for line in cli("approvals", "--json").output.splitlines()
        ]
        assert rows[0]["status"] == "approved"
        assert rows[0]["max_commands"] == 3
        assert rows[0]["hosts"] == ["github.com"]
        status = cli("session", "status", "--session", session)
        assert "level:     L2" in status.output
        assert "used 0/3" in status.output

    def test_deny(self, cli, session):
        """deny answers a request; a second deny fails."""
        rid = escalate(cli, session, "L3")
        assert cli("deny", rid, "--reason", "no").output.strip() == f"denied {rid}"
        assert cli("deny", rid).exit_code == 1
        assert cli("approve", rid).exit_code == 1

    def test_escalate_needs_a_started_session(self, cli):
        """An unknown session cannot be escalated."""
        result = cli(
            "escalate",
            "--to",
            "L2",
            "--reason",
            "x",
            "--session",
            "2026-01-01_session-0042",
        )
        assert result.exit_code == 1
        assert "does not exist" in result.output

    def test_escalate_ad_hoc_session_refused(self, cli, workspace):
        """A session without session.started cannot be escalated."""
        sid = allocate_session_id(workspace / "Logs" / "Sessions")
        result = cli("escalate", "--to", "L2", "--reason", "x", "--session", sid)
        assert result.exit_code == 1
        assert "not started" in result.output

    def test_bad_duration(self, cli, session):
        """A malformed --expires is a usage error."""
        rid = escalate(cli, session)
        assert cli("approve", rid, "--expires", "soon").exit_code == 2

    @pytest.mark.parametrize("command", ["approve", "deny"])
    def test_operator_only(self, cli, session, command):
        """approve and deny refuse inside a guarded process."""
        rid = escalate(cli, session)
        result = cli(command, rid, env={"STATETRACE_GUARD_ACTIVE": "1"})
        assert result.exit_code == 1
        assert "operator action" in result.output
        assert cli("approvals", "--pending").output.splitlines()[1].startswith(rid)

    def test_empty_listing(self, cli, workspace):
        """No requests at all: says for which workspace."""
        assert (
            cli("approvals").output.strip() == f"no requests for workspace {workspace}"
        )
        assert cli("approvals", "--json").output == ""

    def test_found_from_any_directory_inside(
        self, cli, session, workspace, monkeypatch
    ):
        """From a subdirectory, even one that is its own git repository."""
        rid = escalate(cli, session)
        nested = workspace / "vendor" / "lib"
        (nested / ".git").mkdir(parents=True)
        monkeypatch.chdir(nested)
        listing = cli("approvals", "--pending")
        assert listing.output.splitlines()[0] == (
            f"pending requests for workspace {workspace}:"
        )
        assert rid in listing.output
        rows = [
            json.loads(line) for line in cli("approvals", "--json").output.splitlines()
        ]
        assert rows[0]["workspace"] == str(workspace)
        assert cli("approve", rid).exit_code == 0
