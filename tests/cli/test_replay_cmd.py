"""``guard replay``: exit codes, output forms, transcripts and --execute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import statetrace_guard.replay as replay_module
from statetrace_guard import rerun
from statetrace_guard.audit.trail import CommandFacts, Trail, session_path
from statetrace_guard.cli import main, replay_cmd
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy
from statetrace_guard.replay import Change, JudgedNow, RecordedCommand, Row

SESSION = "2026-01-31_session-0001"
POLICY = load_policy(None)
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "transcripts"


def record(
    workspace: Path, argv: tuple[str, ...], exit_code: int = 0, **override: Any
) -> Path:
    """Append one command, judged now (fields overridable), to the session log."""
    log_dir = workspace / "Logs"
    place = make_place(workspace, workspace, log_dir, None, {})
    verdict = evaluate(argv, Level.L1, POLICY, place).verdict
    fields: dict[str, Any] = {
        "session_id": SESSION,
        "task_id": None,
        "level": "L1",
        "argv": argv,
        "cwd": str(workspace),
        "pid": 77,
        "effects": tuple(sorted(e.value for e in verdict.effects)),
        "decision": verdict.decision.label,
        "reasons": verdict.reasons,
        "rules": verdict.rules,
        "policy_sha256": POLICY.sha256,
        "network": False,
        "urls": (),
        "env": {},
        "required_level": None
        if verdict.required_level is None
        else verdict.required_level.name,
        **override,
    }
    facts = CommandFacts(**fields)
    trail = Trail(log_dir, SESSION, front="direct")
    if facts.decision == "block":
        trail.blocked(facts)
    else:
        trail.started(facts, {})
        trail.finished(facts, {"exit_code": exit_code, "duration_ms": 1.0})
    return session_path(log_dir, SESSION)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


@pytest.fixture
def log(workspace: Path) -> Path:
    """A session with one allowed, one blocked and one drifted command."""
    record(workspace, ("ls", "-la"))
    record(workspace, ("curl", "http://example.com"))
    return record(
        workspace,
        ("curl", "-s", "http://example.com/x"),
        decision="allow",
        required_level="L1",
        rules=("old-rule",),
    )


class TestExitCodes:
    def test_unchanged_exits_0(self, workspace):
        """Nothing changed: the summary line and exit 0."""
        path = record(workspace, ("ls",))
        result = invoke(str(path))
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == (
            "1 commands, 1 unchanged, 0 now blocked, 0 now allowed"
        )

    def test_changed_exits_1_with_a_row(self, log):
        """A now-blocked command is printed with both sides and its rule."""
        result = invoke(str(log))
        assert result.exit_code == 1
        lines = result.stdout.splitlines()
        assert lines[0].startswith("now blocked  ")
        assert "curl -s http://example.com/x" in lines[0]
        assert "decision allow -> block" in lines[1]
        assert "rule old-rule -> " in lines[1]
        assert lines[2].startswith("    why: curl")
        assert lines[-1] == "3 commands, 2 unchanged, 1 now blocked, 0 now allowed"

    @pytest.mark.parametrize(
        ("fail_on", "code"), [("blocked", 1), ("allowed", 0), ("any", 1)]
    )
    def test_fail_on_direction(self, log, fail_on, code):
        """--fail-on gates only on the direction CI cares about."""
        assert invoke("--fail-on", fail_on, str(log)).exit_code == code

    def test_broken_chain_exits_4_naming_the_line(self, log):
        """A tampered log is refused with exit 4 unless --no-verify."""
        text = log.read_text().replace('"ls","-la"', '"ls","-lh"', 1)
        log.write_text(text)
        result = invoke(str(log))
        assert result.exit_code == 4
        assert f"{log}:2: chain broken" in result.stderr
        assert "--no-verify" in result.stderr
        assert invoke("--no-verify", "--fail-on", "allowed", str(log)).exit_code == 0

    def test_bad_option_is_usage_error(self, log):
        """An unknown --fail-on value is a usage error (exit 2)."""
        assert invoke("--fail-on", "sideways", str(log)).exit_code == 2


class TestOutput:
    def test_json_lines_every_command_then_summary(self, log):
        """--json prints one object per command and a summary object last."""
        result = invoke("--json", str(log))
        objects = [json.loads(line) for line in result.stdout.splitlines()]
        assert [o["kind"] for o in objects] == ["command"] * 3 + ["summary"]
        assert all(o["schema_version"] == 1 for o in objects)
        assert objects[2]["change"] == "now-blocked"
        assert objects[2]["recorded"]["rules"] == ["old-rule"]
        assert objects[-1]["now_blocked"] == 1

    def test_only_changed(self, log):
        """--only-changed leaves unchanged commands out of --json."""
        result = invoke("--json", "--only-changed", str(log))
        objects = [json.loads(line) for line in result.stdout.splitlines()]
        assert [o["kind"] for o in objects] == ["command", "summary"]

    def test_level_override(self, workspace):
        """--level L0 re-judges a recorded L1 write as now blocked."""
        path = record(workspace, ("bash", "-c", "echo hi > notes.txt"))
        result = invoke("--level", "L0", str(path))
        assert result.exit_code == 1
        assert "now blocked" in result.stdout

    @pytest.mark.usefixtures("log")
    def test_log_directory_argument(self, workspace):
        """A log directory means every session log under its Sessions/."""
        result = invoke(str(workspace / "Logs"))
        assert result.stdout.splitlines()[-1].startswith("3 commands")

    def test_jobs_give_the_same_output(self, workspace, monkeypatch):
        """Worker processes change nothing in what replay prints."""
        for index in range(8):
            record(workspace, ("cat", f"f{index}.txt"))
        path = record(workspace, ("curl", "http://example.com"))
        serial = invoke("--json", "--jobs", "1", str(path))
        monkeypatch.setattr(replay_module, "PARALLEL_FROM", 2)
        monkeypatch.setattr(replay_module, "_CHUNK", 2)
        parallel = invoke("--json", "--jobs", "2", str(path))
        assert parallel.stdout == serial.stdout
        assert parallel.exit_code == serial.exit_code == 0

    def test_empty_directory_is_usage_error(self, tmp_path):
        """A directory without logs is a usage error."""
        result = invoke(str(tmp_path))
        assert result.exit_code == 2
        assert "no logs found" in result.stderr

    def test_policy_option(self, log, tmp_path):
        """--policy judges with that file; an invalid one exits 3."""
        bad = tmp_path / "bad.toml"
        bad.write_text("nonsense = [")
        assert invoke("--policy", str(bad), str(log)).exit_code == 3


class TestTranscripts:
    def test_claude_code(self):
        """--from claude-code judges the Bash calls; the download is now blocked."""
        result = invoke("--from", "claude-code", str(ASSETS / "claude-code.jsonl"))
        assert result.exit_code == 1
        assert "curl -sSL" in result.stdout
        assert result.stdout.splitlines()[-1] == (
            "3 commands, 2 unchanged, 1 now blocked, 0 now allowed"
        )

    def test_codex_json(self):
        """--from codex with --json reports every shell call."""
        result = invoke(
            "--from", "codex", "--json", str(ASSETS / "codex-rollout.jsonl")
        )
        objects = [json.loads(line) for line in result.stdout.splitlines()]
        assert objects[-1]["commands"] == 4
        blocked = [o["argv"] for o in objects if o.get("change") == "now-blocked"]
        assert blocked == [["zsh", "-c", "wget -q https://example.com/data.zip"]]

    def test_codex_at_l3_with_opt_in(self, monkeypatch):
        """The shell's opt-in variables apply to transcripts at --level L3."""
        monkeypatch.setenv("STATETRACE_AGENT_ALLOW_NET", "1")
        result = invoke(
            "--from", "codex", "--level", "L3", str(ASSETS / "codex-rollout.jsonl")
        )
        # The opt-in applied: what blocks now is the host the policy lacks.
        assert "needs L3 with" not in result.stdout
        assert "why: no [[network]] entry allows example.com" in result.stdout


class TestProgress:
    def test_progress_line_for_long_inputs(self, workspace):
        """More than 10,000 commands print progress on stderr."""
        path = record(workspace, ("ls",))
        lines = path.read_bytes().splitlines(keepends=True)
        header, started, finished = lines
        # The same record many times breaks the chain: read without verify.
        path.write_bytes(header + (started + finished) * 10_001)
        result = invoke("--no-verify", str(path))
        assert result.exit_code == 0
        assert "replay: 10,000 of 10,001 commands judged" in result.stderr

    def test_long_read_is_announced(self, workspace, monkeypatch):
        """Large logs get a line on stderr before reading starts."""
        path = record(workspace, ("ls",))
        monkeypatch.setattr(replay_cmd, "_ANNOUNCE_FROM", 0)
        result = invoke(str(path))
        assert "replay: verifying and reading 1 log(s)" in result.stderr


class TestExecute:
    def test_reruns_allowed_commands_and_reports_differences(self, workspace, tmp_path):
        """--execute re-runs allowed commands through guard run in WORKSPACE."""
        record(workspace, ("true",), exit_code=0)
        record(workspace, ("false",), exit_code=0)  # recorded 0, will exit 1
        path = record(workspace, ("curl", "http://example.com"))
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        result = invoke("--execute", str(scratch), str(path))
        assert result.exit_code == 1, result.output
        assert "exit differs" in result.stdout
        assert "recorded 0, now 1: false" in result.stdout
        assert "executed 2 commands in session" in result.stdout
        assert "1 same exit status, 1 differ" in result.stdout
        assert list((scratch / "Logs" / "Sessions").glob("*.jsonl"))

    def test_execute_json_with_policy(self, workspace, tmp_path):
        """--execute --json adds one row per re-run and a summary object."""
        record(workspace, ("true",), exit_code=0)
        path = record(workspace, ("ls",), exit_code=0)
        policy = tmp_path / "guard.toml"
        policy.write_bytes(
            (
                Path(__file__).resolve().parents[2]
                / "statetrace_guard"
                / "default_policy.toml"
            ).read_bytes()
        )
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        result = invoke(
            "--execute", str(scratch), "--json", "--policy", str(policy), str(path)
        )
        assert result.exit_code == 0, result.output
        objects = [json.loads(line) for line in result.stdout.splitlines()]
        kinds = [o["kind"] for o in objects]
        assert kinds == [
            "command",
            "command",
            "summary",
            "execute",
            "execute",
            "execute-summary",
        ]
        assert objects[-1]["differ"] == 0
        assert objects[3]["exit"] == 0


class TestHelpers:
    def test_cwd_moves_into_the_scratch_workspace(self, tmp_path):
        """A recorded cwd below its workspace maps to the same place in the copy."""
        original = tmp_path / "orig"
        (original / ".git").mkdir(parents=True)
        (original / "src").mkdir()
        scratch = tmp_path / "scratch"
        (scratch / "src").mkdir(parents=True)
        assert rerun._cwd_in(scratch, str(original / "src")) == scratch / "src"
        assert rerun._cwd_in(scratch, str(original)) == scratch
        assert rerun._cwd_in(scratch, str(tmp_path / "gone")) == scratch
        (original / "only-here").mkdir()
        assert rerun._cwd_in(scratch, str(original / "only-here")) == scratch

    def test_describe_row_names_never(self):
        """A required level of None reads 'never'; long commands are shortened."""
        command = RecordedCommand(
            source="/x/s.jsonl",
            line=3,
            argv=("rm", "x" * 300),
            level=Level.L1,
            cwd="/tmp",
            decision="allow",
            required_level="L1",
            seq=2,
        )
        now = JudgedNow("block", None, ("write",), ("rule-a",), ("r",), "why")
        row = Row(command, now, Change.NOW_BLOCKED, ("decision", "required_level"))
        head, changes, why = replay_cmd.describe_row(row)
        assert head.startswith("now blocked  s.jsonl:3 (seq 2) at L1: rm xxx")
        assert head.endswith("...")
        assert (
            changes == "    decision allow -> block; required L1 -> never; rule rule-a"
        )
        assert why == "    why: why"
