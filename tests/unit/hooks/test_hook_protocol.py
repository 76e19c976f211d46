"""Parsing hook input and building the runtime's answers."""

from __future__ import annotations

import json

import pytest

from statetrace_guard.hooks.protocol import (
    HookInputError,
    allow_with,
    block,
    deny,
    parse_input,
)

BASE = {
    "session_id": "abc",
    "cwd": "/w",
    "hook_event_name": "PreToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "ls"},
    "tool_use_id": "t1",
}


class TestParseInput:
    def test_accepts_a_tool_call(self):
        """The fields both runtimes send."""
        hook = parse_input("claude-code", json.dumps(BASE))
        assert (hook.event, hook.tool_name, hook.tool_use_id) == (
            "PreToolUse",
            "Bash",
            "t1",
        )
        assert hook.tool_input == {"command": "ls"}

    def test_accepts_session_events_without_tools(self):
        """SessionStart carries no tool."""
        data = {"session_id": "abc", "cwd": "/w", "hook_event_name": "SessionStart"}
        assert parse_input("codex", json.dumps(data)).tool_name is None

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "not json",
            "[1, 2]",
            json.dumps({**BASE, "hook_event_name": "Stop"}),
            json.dumps({**BASE, "hook_event_name": None}),
            json.dumps({**BASE, "session_id": ""}),
            json.dumps({**BASE, "cwd": "relative/dir"}),
            json.dumps({**BASE, "tool_input": "ls"}),
            json.dumps({k: v for k, v in BASE.items() if k != "tool_name"}),
            json.dumps({**BASE, "transcript_path": 7}),
        ],
    )
    def test_rejects_malformed(self, text):
        """Anything else is an input error: the hook blocks."""
        with pytest.raises(HookInputError):
            parse_input("claude-code", text)

    def test_rejects_unknown_runtime(self):
        """Only the runtimes the hook speaks for."""
        with pytest.raises(HookInputError):
            parse_input("cursor", json.dumps(BASE))


class TestAnswers:
    def test_allow_keeps_the_given_input(self):
        """updatedInput is exactly what the handler passes."""
        out = json.loads(allow_with({"command": "x", "description": "d"}).stdout)
        assert out["hookSpecificOutput"] == {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "updatedInput": {"command": "x", "description": "d"},
        }

    def test_deny_carries_the_reason(self):
        """The model reads the reason as the tool's result."""
        out = json.loads(deny("guard: blocked: x").stdout)["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny"
        assert out["permissionDecisionReason"] == "guard: blocked: x"

    def test_block_is_exit_2_with_one_line(self):
        """The runtime's block answer."""
        answer = block("guard: hook: bad\ninput")
        assert (answer.exit_code, answer.stdout, answer.stderr) == (
            2,
            "",
            "guard: hook: bad input",
        )


def test_the_lean_entry_agrees_with_the_protocol():
    """hooks.main keeps copies of two constants to stay import-free."""
    from statetrace_guard.hooks import main, protocol  # noqa: PLC0415

    assert main._RUNTIMES == protocol.RUNTIMES
    assert main._MAX_INPUT == protocol.MAX_INPUT
    assert main._BLOCK_EXIT == protocol.BLOCK_EXIT
