"""The protected-path list: one matcher for the classifier, the kernel and the sweep."""

from __future__ import annotations

import pytest

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.decision import DecisionContext, decide
from statetrace_guard.errors import PolicyError
from statetrace_guard.levels import Effect, Level
from statetrace_guard.policy import load_policy, load_policy_bytes
from statetrace_guard.protect import (
    GIT_MINIMUM,
    NESTED_GIT,
    compile_protect,
    contains_protected,
    expand,
    protection,
)

BUILTIN = load_policy(None)
WS = "/ws"
CTX = DecisionContext(
    workspace=WS,
    cwd=WS,
    protected=(f"{WS}/Logs/Sessions", f"{WS}/Logs/NetOps", f"{WS}/guard.toml"),
    temp_dirs=("/tmp",),
)


def write_verdict(target: str, level: Level, policy=BUILTIN):
    command = SimpleCommand(
        argv=("tee", target),
        shell="bash",
        name="tee",
        effects=frozenset({Effect.WRITE}),
        spec="test:tee",
        writes=(target,),
    )
    return decide(Classification(commands=(command,)), policy, level, CTX)


class TestMatching:
    @pytest.mark.parametrize(
        ("rel", "glob"),
        [
            ("Data/a/b.accdb", "Data/**/*.accdb"),
            ("data/X.ACCDB", "Data/**/*.accdb"),
            ("Data/x.laccdb", "Data/**/*.laccdb"),
            ("Data/StateTraceSettings.json", "Data/StateTraceSettings.json"),
            (".git/hooks/pre-commit", ".git/hooks"),
            (".git/config", ".git/config"),
            (".git/commondir", ".git/commondir"),
            (".git/modules/x/config", ".git/modules"),
            (".git/worktrees/w/gitdir", ".git/worktrees"),
            (".claude/settings.local.json", ".claude/settings*.json"),
            (".idea/workspace.xml", ".idea"),
            (".codex/config.toml", ".codex"),
            ("sub/.git", NESTED_GIT),
            ("a/b/.git/config", NESTED_GIT),
            (".envrc", ".envrc"),
        ],
    )
    def test_accepts_protected(self, rel, glob):
        """A protected path, or one below a protected directory, names its glob."""
        assert protection(rel, BUILTIN.protect) == glob

    @pytest.mark.parametrize(
        "rel",
        [
            "src/a.py",
            ".git/HEAD",
            ".git/index.lock",
            ".git/rebase-merge/done",
            ".claude/agents/x.md",
            "Data/readme.md",
            "Logs/Reports/r.json",
            ".",
            "",
            "src/.gitignore",
            "src/.github/x",
        ],
    )
    def test_rejects_unprotected(self, rel):
        """Ordinary workspace paths, .git internals included, are not protected."""
        assert protection(rel, BUILTIN.protect) is None

    @pytest.mark.parametrize(
        ("rel", "expected"),
        [
            ("Data", True),
            ("Data/site", True),
            (".git", True),
            (".claude", True),
            (".vscode", True),
            ("src", False),
            (".git/objects", False),
            (".", False),
        ],
    )
    def test_contains_protected(self, rel, expected):
        """A directory that holds (or may hold) a protected path is named."""
        assert (contains_protected(rel, BUILTIN.protect) is not None) is expected

    def test_git_minimum_whatever_the_policy_says(self):
        """A policy with an empty [protect] list still protects git's files."""
        patterns = compile_protect(())
        assert patterns.texts == GIT_MINIMUM
        assert protection(".git/hooks/x", patterns) == ".git/hooks"


class TestPolicySection:
    def test_default_list_when_absent(self):
        """A policy without [protect] gets the default list."""
        policy = load_policy_bytes(b'name = "p"\n', "p.toml")
        assert ".envrc" in policy.protect.texts
        assert "Data/**/*.accdb" not in policy.protect.texts

    def test_builtin_lists_statetrace_data(self):
        """The built-in StateTrace policy fences L2's data."""
        assert "Data/**/*.accdb" in BUILTIN.protect.texts
        assert "Data/StateTraceSettings.json" in BUILTIN.protect.texts

    def test_extends_inherits_and_replaces(self):
        """Under `extends`, no [protect] keeps the base's list; one replaces it."""
        inherit = load_policy_bytes(
            b'extends = "builtin:statetrace"\nname = "p"\n', "inherit.toml"
        )
        assert "Data/**/*.accdb" in inherit.protect.texts
        replace = load_policy_bytes(
            b'extends = "builtin:statetrace"\nname = "p"\n'
            b'[protect]\npaths = ["Secrets/"]\n',
            "replace.toml",
        )
        assert "Data/**/*.accdb" not in replace.protect.texts
        assert "Secrets" in replace.protect.texts
        assert ".git/hooks" in replace.protect.texts  # the git minimum stays

    @pytest.mark.parametrize("glob", ["/etc/passwd", "../x", "a/../b", "a\\\\b", ""])
    def test_rejects_bad_globs(self, glob):
        """Globs are workspace-relative, without '..' or backslashes."""
        raw = f'name = "p"\n[protect]\npaths = ["{glob}"]\n'.encode()
        with pytest.raises(PolicyError):
            load_policy_bytes(raw, "bad.toml")


class TestDecision:
    @pytest.mark.parametrize(
        "target",
        [
            ".git/hooks/pre-commit",
            ".git/config",
            "/ws/.git/hooks",
            "Data/site/site.accdb",
            "Data/StateTraceSettings.json",
            ".claude/settings.json",
            "sub/.git",
            ".git/commondir",
            "Data",
            ".git",
        ],
    )
    def test_protected_writes_need_l2(self, target):
        """Writing a protected path, or a directory holding one, needs L2 up front."""
        verdict = write_verdict(target, Level.L1)
        assert not verdict.allowed
        assert verdict.required_level is Level.L2
        assert verdict.commands[0].rule == "protected-path"
        assert "protected below L2" in verdict.reasons[0]
        assert write_verdict(target, Level.L2).allowed

    @pytest.mark.parametrize(
        "target",
        [
            "Logs/Sessions/a.jsonl",
            "logs/netops",
            "Logs",
            "guard.toml",
            "/ws/guard.toml",
        ],
    )
    def test_guard_files_never(self, target):
        """The guard's own files are never writable."""
        verdict = write_verdict(target, Level.L3)
        assert verdict.required_level is None
        assert verdict.commands[0].rule == "self-protect"

    @pytest.mark.parametrize(
        "target",
        [
            "src/a.py",
            ".git/index.lock",
            "Logs/Reports/r.json",
            "/tmp/x",
            "sub/guard.toml",
        ],
    )
    def test_ordinary_writes_need_l1(self, target):
        """Everything else inside the workspace and temp is an L1 write."""
        verdict = write_verdict(target, Level.L1)
        assert verdict.allowed
        assert verdict.commands[0].rule == "effect:write"


class TestExpand:
    def test_finds_existing_matches_only(self, tmp_path):
        """Literal globs cost an lstat; wildcards list only below their prefix."""
        ws = tmp_path / "ws"
        (ws / "Data" / "site").mkdir(parents=True)
        (ws / "Data" / "site" / "site.accdb").write_text("")
        (ws / "Data" / "site" / "notes.txt").write_text("")
        (ws / "Data" / "top.ACCDB").write_text("")
        (ws / ".git" / "hooks").mkdir(parents=True)
        (ws / ".claude").mkdir()
        (ws / ".claude" / "settings.local.json").write_text("{}")
        (ws / ".envrc").symlink_to("envrc.real")
        (ws / "envrc.real").write_text("")
        found = set(expand(str(ws), BUILTIN.protect))
        assert found == {
            f"{ws}/Data/site/site.accdb",
            f"{ws}/Data/top.ACCDB",
            f"{ws}/.git/hooks",
            f"{ws}/.claude/settings.local.json",
            f"{ws}/.envrc",
            f"{ws}/envrc.real",
        }

    def test_lister_is_used_for_wildcards(self, tmp_path):
        """A cached lister replaces directory reads for wildcard globs."""
        calls = []

        def lister(directory):
            calls.append(directory)
            return [("x.accdb", False)] if directory.endswith("/Data") else []

        patterns = compile_protect(["Data/**/*.accdb"])
        assert expand(str(tmp_path), patterns, lister) == (f"{tmp_path}/Data/x.accdb",)
        assert calls == [f"{tmp_path}/Data"]
