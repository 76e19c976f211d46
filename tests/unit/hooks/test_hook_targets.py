"""Which tool is which, and the paths file tools write."""

from __future__ import annotations

import pytest

from statetrace_guard.hooks.protocol import HookInputError
from statetrace_guard.hooks.targets import (
    file_targets,
    patch_targets,
    shell_command,
    tool_kind,
)

PATCH = """*** Begin Patch
*** Add File: new.txt
+hello
*** Update File: src/app.py
*** Move to: src/main.py
@@
-a
+b
*** Delete File: old.txt
*** End Patch
"""


class TestToolKind:
    @pytest.mark.parametrize(
        ("runtime", "tool", "kind"),
        [
            ("claude-code", "Bash", "shell"),
            ("claude-code", "Write", "file"),
            ("claude-code", "Edit", "file"),
            ("claude-code", "MultiEdit", "file"),
            ("claude-code", "NotebookEdit", "file"),
            ("claude-code", "Read", None),
            ("claude-code", "apply_patch", None),
            ("codex", "Bash", "shell"),
            ("codex", "apply_patch", "file"),
            ("codex", "Write", None),
        ],
    )
    def test_kinds(self, runtime, tool, kind):
        """Each runtime's shell and file tools, and nothing else."""
        assert tool_kind(runtime, tool) == kind


class TestFileTargets:
    def test_accepts_claude_file_path(self):
        """Write/Edit name one file_path; NotebookEdit a notebook_path."""
        assert file_targets("claude-code", "Write", {"file_path": "/w/a"}) == ("/w/a",)
        assert file_targets(
            "claude-code", "NotebookEdit", {"notebook_path": "n.ipynb"}
        ) == ("n.ipynb",)

    def test_accepts_every_patch_path(self):
        """Added, updated, moved-to and deleted paths, once each, in order."""
        assert patch_targets(PATCH) == (
            "new.txt",
            "src/app.py",
            "src/main.py",
            "old.txt",
        )

    @pytest.mark.parametrize("field", ["command", "input", "patch"])
    def test_accepts_codex_patch_fields(self, field):
        """The patch text under any of the names Codex has used."""
        assert file_targets("codex", "apply_patch", {field: PATCH})[0] == "new.txt"

    def test_accepts_the_argv_form(self):
        """The older {"command": ["apply_patch", PATCH]} form."""
        assert file_targets("codex", "apply_patch", {"command": ["apply_patch", PATCH]})

    @pytest.mark.parametrize(
        ("runtime", "tool", "tool_input"),
        [
            ("claude-code", "Write", {}),
            ("claude-code", "Write", {"file_path": ""}),
            ("claude-code", "Edit", {"file_path": 3}),
            ("codex", "apply_patch", {}),
            ("codex", "apply_patch", {"command": "rm -rf /"}),
            ("codex", "apply_patch", {"command": "*** Begin Patch\n*** End Patch"}),
            ("codex", "apply_patch", {"command": "*** Begin Patch\n*** Add File: \n"}),
            ("claude-code", "Bash", {"command": "ls"}),
        ],
    )
    def test_rejects_malformed(self, runtime, tool, tool_input):
        """No file named, or not a file tool: the hook blocks."""
        with pytest.raises(HookInputError):
            file_targets(runtime, tool, tool_input)


class TestShellCommand:
    @pytest.mark.parametrize("tool_input", [{}, {"command": ""}, {"command": ["ls"]}])
    def test_rejects_missing_command(self, tool_input):
        """A shell call without a command string is malformed."""
        with pytest.raises(HookInputError):
            shell_command(tool_input)
