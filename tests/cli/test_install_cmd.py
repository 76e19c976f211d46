"""`guard install claude-code|codex`: merge, repeat, remove, touching nothing else."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

USER_SETTINGS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-lint"}]}
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
    "env": {"FOO": "1"},
}

CASES = [
    ("claude-code", "project", ".claude/settings.json"),
    ("codex", "project", ".codex/hooks.json"),
]


def guard_hooks(config: dict, runtime: str) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for event, groups in config.get("hooks", {}).items():
        for group in groups:
            for entry in group["hooks"]:
                if shlex.split(entry["command"])[-2:] == ["hook", runtime]:
                    found.setdefault(event, []).append(group.get("matcher"))
    return found


class TestRoundTrip:
    @pytest.mark.parametrize(("runtime", "scope", "relative"), CASES)
    def test_install_twice_then_uninstall(
        self, guard, workspace, runtime, scope, relative
    ):
        """Install adds guard's hooks; again changes nothing; uninstall restores the file."""
        path = workspace / relative
        path.parent.mkdir(parents=True)
        original = json.dumps(USER_SETTINGS, indent=2) + "\n"
        path.write_text(original)
        first = guard("install", runtime, "--scope", scope)
        assert first.returncode == 0, first.stderr
        assert b"changed" in first.stdout
        installed = json.loads(path.read_text())
        hooks = guard_hooks(installed, runtime)
        assert set(hooks) == {"PreToolUse", "PostToolUse", "SessionStart", "SessionEnd"}
        assert installed["permissions"] == USER_SETTINGS["permissions"]
        assert installed["hooks"]["Stop"] == USER_SETTINGS["hooks"]["Stop"]
        assert (
            installed["hooks"]["PreToolUse"][0]
            == USER_SETTINGS["hooks"]["PreToolUse"][0]
        )
        again = guard("install", runtime, "--scope", scope)
        assert b"unchanged" in again.stdout
        assert json.loads(path.read_text()) == installed
        removed = guard("install", runtime, "--scope", scope, "--uninstall")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(path.read_text()) == USER_SETTINGS
        assert list(json.loads(path.read_text())) == list(USER_SETTINGS)

    def test_matchers_name_the_judged_tools(self, guard, workspace):
        """Claude Code: Bash and the file tools before; the file tools after."""
        guard("install", "claude-code")
        config = json.loads((workspace / ".claude" / "settings.json").read_text())
        hooks = guard_hooks(config, "claude-code")
        assert hooks["PreToolUse"] == ["Bash|Edit|Write|MultiEdit|NotebookEdit"]
        assert hooks["PostToolUse"] == ["Edit|Write|MultiEdit|NotebookEdit"]
        assert hooks["SessionStart"] == [None]

    def test_the_hook_command_runs_this_guard(self, guard, workspace):
        """The installed command is this interpreter's guard, by absolute path."""
        guard("install", "codex")
        config = json.loads((workspace / ".codex" / "hooks.json").read_text())
        command = config["hooks"]["SessionStart"][0]["hooks"][0]["command"]
        words = shlex.split(command)
        assert Path(words[0]).is_absolute()
        assert words[-2:] == ["hook", "codex"]

    def test_codex_install_explains_trust(self, guard):
        """Codex runs only trusted hooks: say how."""
        result = guard("install", "codex")
        assert b"--dangerously-bypass-hook-trust" in result.stdout
        assert b'trust_level = "trusted"' in result.stdout


class TestUserScope:
    @pytest.mark.parametrize(
        ("runtime", "variable", "name"),
        [
            ("claude-code", "CLAUDE_CONFIG_DIR", "settings.json"),
            ("codex", "CODEX_HOME", "hooks.json"),
        ],
    )
    def test_user_scope_uses_the_runtime_home(
        self, guard, tmp_path, runtime, variable, name
    ):
        """--scope user writes the runtime's own config directory."""
        home = tmp_path / "runtime-home"
        result = guard("install", runtime, "--scope", "user", env={variable: str(home)})
        assert result.returncode == 0, result.stderr
        assert guard_hooks(json.loads((home / name).read_text()), runtime)

    def test_user_scope_defaults_under_home(self, guard, tmp_path):
        """Without the variables: ~/.claude and ~/.codex."""
        env = {"HOME": str(tmp_path)}
        guard("install", "claude-code", "--scope", "user", env=env)
        guard("install", "codex", "--scope", "user", env=env)
        assert (tmp_path / ".claude" / "settings.json").is_file()
        assert (tmp_path / ".codex" / "hooks.json").is_file()


class TestRefusals:
    @pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"hooks": []}'])
    def test_a_file_it_cannot_merge_is_left_alone(self, guard, workspace, text):
        """Never overwrite what it cannot read: exit 2 and the reason."""
        path = workspace / ".claude" / "settings.json"
        path.parent.mkdir()
        path.write_text(text)
        result = guard("install", "claude-code")
        assert result.returncode == 2
        assert result.stderr.startswith(b"error: ")
        assert path.read_text() == text

    def test_dry_run_writes_nothing(self, guard, workspace):
        """--dry-run says what would change."""
        result = guard("install", "claude-code", "--dry-run")
        assert b"would change" in result.stdout
        assert not (workspace / ".claude").exists()

    @pytest.mark.usefixtures("workspace")
    def test_uninstall_without_install(self, guard):
        """Nothing to remove: unchanged."""
        result = guard("install", "codex", "--uninstall")
        assert b"no guard hooks were installed" in result.stdout
