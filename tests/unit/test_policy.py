from __future__ import annotations

from pathlib import Path

import pytest

from statetrace_guard.classify import ClassifyContext, classify_argv
from statetrace_guard.decision import DecisionContext, decide
from statetrace_guard.errors import PolicyError
from statetrace_guard.levels import Effect, Level
from statetrace_guard.policy import (
    BUILTIN_POLICY_NAME,
    load_policy,
    load_policy_bytes,
    merge_documents,
)

MINIMAL = b'name = "t"\n'


class TestLoad:
    def test_builtin_policy_loads_and_names_itself(self):
        """The shipped policy validates and has the plan's effect levels."""
        policy = load_policy(None)
        assert policy.source == BUILTIN_POLICY_NAME
        assert policy.effect_levels[Effect.READ] is Level.L0
        assert policy.effect_levels[Effect.WRITE] is Level.L1
        assert policy.effect_levels[Effect.NETWORK] is Level.L3
        assert policy.effect_levels[Effect.DYNAMIC] is None
        assert len(policy.sha256) == 64

    def test_minimal_policy_gets_defaults(self):
        """A policy with only a name is valid and fails closed on dynamic."""
        policy = load_policy_bytes(MINIMAL, "mem.toml")
        assert policy.rules == ()
        assert policy.effect_levels[Effect.DYNAMIC] is None

    @pytest.mark.parametrize(
        ("text", "field"),
        [
            (b'name = "t"\nbogus = 1\n', "bogus"),
            (
                b'name = "t"\n[settings]\nrequire_sandbox = "maybe"\n',
                "settings.require_sandbox",
            ),
            (b'name = "t"\n[effects]\nread = "L9"\n', "effects.read"),
            (b'name = "t"\n[[rules]]\nid = "x"\nlevel = "L1"\n', "rules.0"),
            (
                b'name = "t"\n[[rules]]\nid = "x"\nprogram = ["a"]\nlevel = "L1"\nargs_pattern = "("\n',
                "rules.0.args_pattern",
            ),
            (
                b'name = "t"\n[[rules]]\nid = "x"\nprogram = ["a"]\nlevel = "L1"\n[[rules]]\nid = "x"\nprogram = ["b"]\nlevel = "L1"\n',
                "rules",
            ),
            (
                b'name = "t"\n[[rules]]\nid = "x"\nprogram = ["a"]\nlevel = "L1"\nextra = 1\n',
                "rules.0.extra",
            ),
        ],
    )
    def test_rejects_invalid_policy_naming_file_and_field(self, text, field):
        """Every validation error names the file and the offending field."""
        with pytest.raises(PolicyError) as caught:
            load_policy_bytes(text, "bad.toml")
        assert caught.value.file == "bad.toml"
        assert caught.value.field.startswith(field)
        assert caught.value.exit_code == 3

    def test_rejects_non_toml(self):
        """Broken TOML is a policy error, not a traceback."""
        with pytest.raises(PolicyError, match="not valid TOML"):
            load_policy_bytes(b"name = = 1", "x.toml")

    def test_unreadable_file_is_a_policy_error(self, tmp_path: Path):
        """A missing policy file is reported with its path."""
        with pytest.raises(PolicyError, match="cannot read"):
            load_policy(tmp_path / "missing.toml")

    def test_rules_indexed_by_lowercase_program(self):
        """Program names match case-insensitively (PowerShell)."""
        policy = load_policy_bytes(
            b'name = "t"\n[[rules]]\nid = "p"\nprogram = ["Invoke-Pester"]\nlevel = "L1"\n',
            "t.toml",
        )
        assert "invoke-pester" in policy.by_program


EXTENDING = b"""extends = "builtin:statetrace"
name = "my-project"

[effects]
dynamic = "L2"

[settings]
max_commands = 50

[[rules]]
id = "make-test"
program = ["make"]
args_prefix = ["test"]
level = "L1"
effects = ["dynamic"]
match = ["make test"]
"""


class TestExtends:
    """``extends`` merges a workspace policy over a built-in one."""

    def test_tables_merge_per_key_and_rules_append(self):
        """The overlay wins per key; the base's rules come first, then its own."""
        base = load_policy(None)
        policy = load_policy_bytes(EXTENDING, "guard.toml")
        assert policy.name == "my-project"
        assert policy.model.extends == "builtin:statetrace"
        assert policy.effect_levels[Effect.DYNAMIC] is Level.L2
        assert policy.effect_levels[Effect.WRITE] is Level.L1  # from the base
        assert policy.settings.max_commands == 50
        assert policy.settings.max_blocked == base.settings.max_blocked
        ids = [rule.id for rule in policy.rules]
        assert ids == [*(rule.id for rule in base.rules), "make-test"]

    def test_digest_covers_the_base(self):
        """Two files with the same bytes but different bases differ in sha256."""
        plain = load_policy_bytes(EXTENDING.replace(b"extends", b"# extends"), "a")
        extended = load_policy_bytes(EXTENDING, "a")
        assert plain.sha256 != extended.sha256

    def test_strictest_rule_still_wins(self):
        """A workspace rule cannot loosen a stricter built-in rule for the same command."""
        loose = EXTENDING + (
            b'\n[[rules]]\nid = "loose-policy"\nprogram = ["set-executionpolicy"]\n'
            b'level = "L0"\n'
        )
        policy = load_policy_bytes(loose, "guard.toml")
        ctx = ClassifyContext("/w", "/w")
        found = classify_argv(["pwsh", "-c", "Set-ExecutionPolicy Bypass"], ctx)
        verdict = decide(found, policy, Level.L2, DecisionContext("/w", "/w", ()))
        assert verdict.required_level is Level.L3
        assert verdict.commands[0].rule == "execution-policy"

    @pytest.mark.parametrize(
        ("text", "field", "file"),
        [
            (b'extends = "builtin:nope"\nname = "t"\n', "extends", "guard.toml"),
            (b'extends = 3\nname = "t"\n', "extends", "guard.toml"),
            (
                b'extends = "builtin:statetrace"\n[[rules]]\nid = "x"\nlevel = "L1"\n',
                "rules.0",
                "guard.toml",
            ),
            (
                (
                    b'extends = "builtin:statetrace"\n[[rules]]\nid = "pester"\n'
                    b'program = ["x"]\nlevel = "L1"\n'
                ),
                "rules",
                "guard.toml",
            ),
            (b'extends = "builtin:statetrace"\nbogus = 1\n', "bogus", "guard.toml"),
        ],
    )
    def test_errors_name_the_extending_file_and_its_own_index(self, text, field, file):
        """An error in the extending file names it, counting only its own entries."""
        with pytest.raises(PolicyError) as caught:
            load_policy_bytes(text, "guard.toml")
        assert caught.value.file == file
        assert caught.value.field == field or caught.value.field.startswith(field + ".")


class TestMergeDocuments:
    """The merge is generic: every section follows the same three rules."""

    def test_nested_tables_merge_and_overlay_wins(self):
        base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "s": "base"}
        overlay = {"a": {"y": {"q": 3}, "z": 4}, "s": "mine"}
        assert merge_documents(base, overlay) == {
            "a": {"x": 1, "y": {"p": 1, "q": 3}, "z": 4},
            "s": "mine",
        }

    def test_arrays_of_tables_append_and_other_arrays_replace(self):
        base = {"network": [{"host": "a"}], "paths": ["x", "y"]}
        overlay = {"network": [{"host": "b"}], "paths": ["z"]}
        assert merge_documents(base, overlay) == {
            "network": [{"host": "a"}, {"host": "b"}],
            "paths": ["z"],
        }

    def test_merge_does_not_change_its_inputs(self):
        base = {"t": {"k": 1}, "r": [{"id": "a"}]}
        overlay = {"t": {"k": 2}, "r": [{"id": "b"}]}
        merge_documents(base, overlay)
        assert base == {"t": {"k": 1}, "r": [{"id": "a"}]}
        assert overlay == {"t": {"k": 2}, "r": [{"id": "b"}]}


class TestJobs:
    """``[jobs]``: where session jobs may start and how many may run (issue 15.4)."""

    def test_defaults(self):
        """Without a section: from L1, four at a time."""
        jobs = load_policy(None).model.jobs
        assert (jobs.lowest_level, jobs.max_running) == ("L1", 4)

    def test_an_extending_policy_sets_one_key_and_keeps_the_other(self):
        """Tables merge per key under ``extends``."""
        policy = load_policy_bytes(
            b'extends = "builtin:statetrace"\nname = "t"\n[jobs]\nmax_running = 1\n',
            "guard.toml",
        )
        assert (policy.model.jobs.lowest_level, policy.model.jobs.max_running) == (
            "L1",
            1,
        )

    @pytest.mark.parametrize(
        "section",
        [b"max_running = 0", b'lowest_level = "L9"', b"every = 1"],
    )
    def test_rejects_bad_values(self, section):
        """No budget of zero, no unknown level, no unknown key."""
        with pytest.raises(PolicyError, match=r"guard\.toml: jobs\."):
            load_policy_bytes(b'name = "t"\n[jobs]\n' + section + b"\n", "guard.toml")
