from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from statetrace_guard.cli import main


@pytest.fixture
def cli(workspace, monkeypatch):
    (workspace / "docs/plans").mkdir(parents=True)
    (workspace / "docs/plans/PlanA.md").write_text("plan\n")
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def start(cli, *extra):
    result = cli(
        "session",
        "start",
        "--task",
        "ST-A-001",
        "--plan",
        "docs/plans/PlanA.md",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


class TestStart:
    def test_prints_id_and_export(self, cli):
        """start prints the id, then the export line."""
        sid, export = start(cli)
        assert export == f"export STATETRACE_GUARD_SESSION={sid}"

    def test_pwsh_form(self, cli):
        """--shell pwsh prints the PowerShell assignment."""
        sid, line = start(cli, "--shell", "pwsh")
        assert line == f'$env:STATETRACE_GUARD_SESSION = "{sid}"'

    def test_rejects_bad_task(self, cli):
        """A malformed task id exits 2 with a hint."""
        result = cli(
            "session", "start", "--task", "A1", "--plan", "docs/plans/PlanA.md"
        )
        assert result.exit_code == 2
        assert "ST-A-001" in result.output

    def test_rejects_missing_plan(self, cli):
        """A missing plan exits 1."""
        result = cli("session", "start", "--task", "ST-A-001", "--plan", "x.md")
        assert result.exit_code == 1
        assert "plan file x.md does not exist" in result.output

    def test_l2_is_not_a_start_level(self, cli):
        """--level L2 is refused by the option itself."""
        result = cli(
            "session",
            "start",
            "--task",
            "ST-A-001",
            "--plan",
            "docs/plans/PlanA.md",
            "--level",
            "L2",
        )
        assert result.exit_code == 2


class TestStatusEndResume:
    def test_status_text_and_json(self, cli):
        """status in text and JSON."""
        sid, _ = start(cli)
        text = cli("session", "status", "--session", sid)
        assert text.exit_code == 0
        assert "level:     L1" in text.output
        data = json.loads(
            cli(
                "session", "status", "--json", env={"STATETRACE_GUARD_SESSION": sid}
            ).output
        )
        assert data["level"] == "L1"
        assert data["managed"] is True
        assert data["commands_run"] == 0

    def test_status_without_session(self, cli):
        """No session named: usage error."""
        assert cli("session", "status").exit_code == 2

    def test_end_prints_report_and_markdown(self, cli, workspace):
        """end prints the four sections and writes the Markdown log."""
        sid, _ = start(cli)
        md = workspace / "docs/agents/sessions/log.md"
        result = cli(
            "session",
            "end",
            "--session",
            sid,
            "--next",
            "review",
            "--markdown",
            str(md),
        )
        assert result.exit_code == 0
        for section in (
            "PATCH SUMMARY",
            "TEST RESULTS",
            "TASKBOARD UPDATE",
            "NEXT STEP",
        ):
            assert section in result.output
        assert "## Validation" in md.read_text()
        again = cli("session", "end", "--session", sid)
        assert again.exit_code == 1
        assert "has ended" in again.output

    def test_end_require_reset(self, cli, workspace):
        """--require-reset exits 1 while a watched file differs."""
        sid, _ = start(cli)
        (workspace / "Data").mkdir()
        (workspace / "Data/StateTraceSettings.json").write_text("{}")
        result = cli("session", "end", "--session", sid, "--require-reset")
        assert result.exit_code == 1
        assert "overrides not reset" in result.output

    def test_resume_is_operator_only(self, cli):
        """resume refuses inside a guarded process, works for the operator."""
        sid, _ = start(cli)
        refused = cli(
            "session", "resume", "--session", sid, env={"STATETRACE_GUARD_ACTIVE": "1"}
        )
        assert refused.exit_code == 1
        assert "operator action" in refused.output
        ok = cli("session", "resume", "--session", sid, "--reason", "fine")
        assert ok.exit_code == 0
        assert ok.output.startswith(f"resumed {sid}")
