from __future__ import annotations

from pathlib import Path

import pytest

from statetrace_guard.errors import PolicyError
from statetrace_guard.levels import Effect, Level
from statetrace_guard.policy import BUILTIN_POLICY_NAME, load_policy, load_policy_bytes

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
