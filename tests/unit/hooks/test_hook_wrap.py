"""Rewriting a runtime's shell command to run through guard run."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statetrace_guard.hooks.wrap import (
    GuardPrefixError,
    escalation_argv,
    guard_program,
    strip_guard,
    wrap_argv,
    wrap_command,
)

TRICKY = [
    "echo 'single' \"double\" $HOME `date` $(id)",
    "printf '%s\\n' a\\ b; echo done",
    "cat <<'EOF'\nline one\n  'quoted' \"x\" \\ \nEOF",
    "echo caf\u00e9 \u2603 && echo tab\there",
    'echo "it\'s" \'a "mix"\'',
]


class TestWrapCommand:
    @pytest.mark.parametrize("command", TRICKY)
    def test_accepts_any_text_quoted_exactly(self, command):
        """A real bash receives the model's command byte for byte."""
        wrapped = wrap_command(
            command, guard=["printf", "%s\\0"], session_id="S", level=None
        )
        out = subprocess.run(
            ["bash", "-c", wrapped], capture_output=True, check=True
        ).stdout.decode()
        assert out.split("\0")[:-1] == [
            "run",
            "--session",
            "S",
            "--",
            "bash",
            "-c",
            command,
        ]

    @given(st.text(min_size=1).filter(lambda text: "\0" not in text))
    def test_quoting_round_trips(self, command):
        """shlex reads back exactly the command that was quoted."""
        wrapped = wrap_command(command, guard=["/g/guard"], session_id="S", level="L1")
        assert shlex.split(wrapped) == [
            "/g/guard",
            "run",
            "--session",
            "S",
            "--level",
            "L1",
            "--",
            "bash",
            "-c",
            command,
        ]

    def test_argv_form_quotes_each_word(self):
        """An escalation is passed as an argv, word by word."""
        argv = ["guard", "escalate", "--to", "L2", "--reason", "run $(pipeline)"]
        wrapped = wrap_argv(argv, guard=["/g/guard"], session_id="S", level=None)
        assert shlex.split(wrapped)[-6:] == argv


class TestStripGuard:
    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            ("ls -la", "ls -la"),
            ("guard run -- ls -la", "ls -la"),
            ("guard run --session X --level L3 -- ls", "ls"),
            ("/opt/venv/bin/guard run --policy /tmp/p.toml -- ls", "ls"),
            ("python3 -m statetrace_guard run -- ls", "ls"),
            ("guard run -- guard run -- ls", "ls"),
            ("guard run -- bash -c 'curl x | sh'", "bash -c 'curl x | sh'"),
            ("guard run -- ls; rm -rf /", "ls; rm -rf /"),
            ("guard-sh -c 'echo hi'", "bash -c 'echo hi'"),
            ("/usr/local/bin/guard-sh -lc 'echo hi'", "bash -lc 'echo hi'"),
            ("guard check -- ls", "guard check -- ls"),
            ("guardian run -- ls", "guardian run -- ls"),
        ],
    )
    def test_accepts_plain_prefixes(self, command, expected):
        """A plain guard prefix is removed, the rest left for bash to parse."""
        assert strip_guard(command) == expected

    @pytest.mark.parametrize(
        "command",
        [
            "guard run ls",
            "guard run --session 'X' -- ls",
            "guard run --",
            "guard run -- ",
            "guard-sh --level L3 -c ls",
            "guard run $(echo --) ls",
        ],
    )
    def test_rejects_other_guard_run_forms(self, command):
        """Quoted options, no `--` or no command: refused, never passed through."""
        with pytest.raises(GuardPrefixError):
            strip_guard(command)

    @given(st.text())
    def test_never_raises_anything_else(self, text):
        """Any text: the same text back, a shorter one, or GuardPrefixError."""
        try:
            result = strip_guard(text)
        except GuardPrefixError:
            return
        assert result == text or len(result) <= len(text) + 2  # guard-sh -> bash


class TestEscalation:
    def test_accepts_plain_escalation(self):
        """`guard escalate --to L2 --reason ...` is recognised as an argv."""
        argv = escalation_argv('guard escalate --to L2 --reason "pipeline run"')
        assert argv == ["guard", "escalate", "--to", "L2", "--reason", "pipeline run"]

    @pytest.mark.parametrize(
        "command",
        [
            "guard escalate --to L2",
            "guard escalate --to L2 --reason x && rm -rf /",
            "echo escalate",
            "guard escalate --to 'L2",
        ],
    )
    def test_rejects_anything_else(self, command):
        """Anything but the plain request is judged as a command."""
        assert escalation_argv(command) is None


class TestGuardProgram:
    def test_names_the_console_script_by_absolute_path(self, tmp_path):
        """The hook's own `guard` runs the rewritten command."""
        assert guard_program(str(tmp_path / "guard"), "/py") == [
            str(tmp_path / "guard")
        ]

    def test_falls_back_to_the_module(self):
        """Run as `python -m statetrace_guard`: the same interpreter and module."""
        assert guard_program("/x/__main__.py", "/py") == [
            "/py",
            "-m",
            "statetrace_guard",
        ]
