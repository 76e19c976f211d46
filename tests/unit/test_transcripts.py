"""Reading shell commands from Claude Code and Codex CLI transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statetrace_guard.errors import AuditError
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy
from statetrace_guard.replay import Change, Replayer, ReplaySettings
from statetrace_guard.transcripts import (
    as_recorded,
    read_claude_code,
    read_codex,
    read_transcript,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "transcripts"
CLAUDE = ASSETS / "claude-code.jsonl"
CODEX = ASSETS / "codex-rollout.jsonl"
LEGACY = ASSETS / "codex-legacy.jsonl"


def write_lines(path: Path, *objects: object) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in objects))
    return path


class TestClaudeCode:
    def test_reads_bash_tool_calls_only(self):
        """Bash tool_use blocks become bash -c commands; other tools are ignored."""
        commands = read_claude_code(CLAUDE)
        assert [c.argv for c in commands] == [
            ("bash", "-c", "git status --short"),
            ("bash", "-c", "python -m pytest -q tests/test_parser.py"),
            (
                "bash",
                "-c",
                (
                    "curl -sSL https://example.com/schema.json -o schema.json"
                    " && cat schema.json | head"
                ),
            ),
        ]

    def test_cwd_time_and_line(self):
        """Each command keeps the line's cwd, timestamp and line number."""
        first = read_claude_code(CLAUDE)[0]
        assert first.cwd == "/home/dev/statetrace"
        assert first.ts == "2026-01-31T10:00:05.000Z"
        assert first.line == 3
        assert first.call_id == "toolu_01"

    def test_exit_status_from_tool_results(self):
        """is_error and 'Exit code N' give the status; a missing result gives None."""
        statuses = [c.exit_status for c in read_claude_code(CLAUDE)]
        assert statuses == [0, 1, None]

    def test_tool_result_with_text_blocks(self, tmp_path):
        """A tool_result whose content is a list of text blocks is read too."""
        path = write_lines(
            tmp_path / "t.jsonl",
            {
                "type": "assistant",
                "message": {
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "Bash",
                            "input": {"command": "make"},
                        },
                    ]
                },
            },
            {
                "type": "user",
                "message": {
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "is_error": True,
                            "content": [{"type": "text", "text": "Exit code 2\nboom"}],
                        },
                    ]
                },
            },
        )
        (command,) = read_claude_code(path)
        assert command.exit_status == 2
        assert command.cwd is None

    @pytest.mark.parametrize(
        "entry",
        [
            {"type": "assistant"},
            {"type": "assistant", "message": "text"},
            {"type": "assistant", "message": {"content": "just text"}},
            {"type": "assistant", "message": {"content": ["x", 1]}},
            {
                "type": "assistant",
                "message": {
                    "content": [{"type": "tool_use", "name": "Bash", "input": "ls"}]
                },
            },
            {
                "type": "assistant",
                "message": {
                    "content": [
                        {"type": "tool_use", "name": "Bash", "input": {"command": "  "}}
                    ]
                },
            },
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "tool_use_id": 5}]},
            },
            [1, 2, 3],
        ],
    )
    def test_rejects_malformed_entries_quietly(self, tmp_path, entry):
        """Lines of unknown or broken shape are skipped, never an error."""
        path = write_lines(tmp_path / "t.jsonl", entry)
        assert read_claude_code(path) == []


class TestCodex:
    def test_reads_every_shell_tool(self):
        """shell, shell_command, exec_command and local_shell_call are read."""
        commands = read_codex(CODEX)
        assert [c.argv for c in commands] == [
            ("bash", "-lc", "ls -la src"),
            ("bash", "-c", "ruff check src"),
            ("zsh", "-c", "wget -q https://example.com/data.zip"),
            ("rm", "-rf", "build"),
        ]

    def test_cwd_from_session_and_workdir(self):
        """cwd comes from session_meta/turn_context; a relative workdir joins it."""
        cwds = [c.cwd for c in read_codex(CODEX)]
        assert cwds == [
            "/home/dev/statetrace",
            "/home/dev/statetrace/sub",
            "/home/dev/statetrace",
            "/home/dev/statetrace",
        ]

    def test_exit_status_from_outputs(self):
        """metadata.exit_code, 'Exit code: N' and 'Process exited with code N'."""
        statuses = [c.exit_status for c in read_codex(CODEX)]
        assert statuses == [0, 1, 0, None]

    def test_timestamps_from_rollout_lines(self):
        """Each call carries its rollout line's timestamp."""
        assert read_codex(CODEX)[0].ts == "2026-01-31T11:00:02.000Z"

    def test_legacy_bare_items(self):
        """Early rollout files without the payload envelope are read too."""
        (command,) = read_codex(LEGACY)
        assert command.argv == ("git", "log", "--oneline", "-5")
        assert command.exit_status == 0

    @pytest.mark.parametrize(
        "item",
        [
            {"type": "function_call", "name": "shell", "arguments": "[1]"},
            {"type": "function_call", "name": "shell", "arguments": 7},
            {
                "type": "function_call",
                "name": "shell",
                "arguments": json.dumps({"command": []}),
            },
            {
                "type": "function_call",
                "name": "shell",
                "arguments": json.dumps({"command": ["ls", 3]}),
            },
            {
                "type": "function_call",
                "name": "exec_command",
                "arguments": json.dumps({"cmd": ""}),
            },
            {"type": "function_call", "name": "update_plan", "arguments": "{}"},
            {"type": "local_shell_call", "action": "ls"},
            {"type": "function_call_output", "output": "Exit code: 3"},
            {"type": "function_call_output", "call_id": "c", "output": {"x": 1}},
        ],
    )
    def test_rejects_malformed_items_quietly(self, tmp_path, item):
        """Items of unknown or broken shape yield no command."""
        path = write_lines(
            tmp_path / "r.jsonl",
            {"timestamp": "t", "type": "response_item", "payload": item},
        )
        assert read_codex(path) == []

    def test_output_object_form(self, tmp_path):
        """An output given as an object with content is read for the status."""
        path = write_lines(
            tmp_path / "r.jsonl",
            {
                "type": "response_item",
                "payload": {
                    "type": "local_shell_call",
                    "call_id": "c1",
                    "action": {"type": "exec", "command": ["make"]},
                },
            },
            {
                "type": "response_item",
                "payload": {
                    "type": "local_shell_call_output",
                    "call_id": "c1",
                    "output": {"content": "Exit code: 4"},
                },
            },
        )
        (command,) = read_codex(path)
        assert command.exit_status == 4
        assert command.cwd is None


class TestReading:
    def test_dispatch_by_format(self):
        """read_transcript picks the reader by format name."""
        assert read_transcript(CLAUDE, "claude-code") == read_claude_code(CLAUDE)
        assert read_transcript(CODEX, "codex") == read_codex(CODEX)

    def test_unreadable_file_is_an_audit_error(self, tmp_path):
        """A missing transcript is reported, not a traceback."""
        with pytest.raises(AuditError):
            read_codex(tmp_path / "missing.jsonl")

    def test_wrong_format_reads_nothing(self):
        """A Codex rollout read as Claude Code has no Bash tool calls."""
        assert read_claude_code(CODEX) == []


class TestJudged:
    def test_as_recorded_compares_decision_only(self):
        """Transcript commands were run: recorded allow, only the decision compared."""
        (command, *_) = as_recorded(read_claude_code(CLAUDE), Level.L1)
        assert command.decision == "allow"
        assert command.compared == ("decision",)
        assert command.level is Level.L1

    def test_policy_would_block_the_download(self):
        """Under the built-in policy at L1 the curl download is now blocked."""
        commands = as_recorded(read_claude_code(CLAUDE), Level.L1)
        result = Replayer(ReplaySettings(load_policy(None))).replay(commands)
        assert [row.change for row in result.rows] == [
            Change.UNCHANGED,
            Change.UNCHANGED,
            Change.NOW_BLOCKED,
        ]
