"""``guard policy init``: a short guard.toml that extends a built-in policy."""

from __future__ import annotations

import json
import tomllib


class TestPolicyInit:
    def test_plain_python_project(self, guard, workspace):
        """The generic policy allows tests and linters at L1, installs at L3 only."""
        (workspace / "pyproject.toml").write_text('[project]\nname = "demo"\n')
        result = guard("policy", "init")
        assert result.returncode == 0, result.stderr
        written = tomllib.loads((workspace / "guard.toml").read_text())
        assert written["extends"] == "builtin:generic"
        for command in (
            ["pytest", "-q"],
            ["python3", "-m", "pytest"],
            ["ruff", "check", "."],
        ):
            checked = guard("check", "--json", "--level", "L1", "--", *command)
            assert checked.returncode == 0, (command, checked.stdout)
        install = guard("check", "--json", "--level", "L1", "--", "pip", "install", "x")
        assert install.returncode == 1
        assert json.loads(install.stdout)["required_level"] == "L3"
        lint = guard("policy", "lint", "guard.toml")
        assert lint.returncode == 0, lint.stderr

    def test_from_statetrace(self, guard, workspace):
        """--from statetrace extends the StateTrace policy (Pester at L1)."""
        assert guard("policy", "init", "--from", "statetrace").returncode == 0
        text = (workspace / "guard.toml").read_text()
        assert 'extends = "builtin:statetrace"' in text
        pester = guard("check", "--level", "L1", "--", "pwsh", "-c", "Invoke-Pester")
        assert pester.returncode == 0, pester.stderr

    def test_existing_file_is_kept_unless_forced(self, guard, workspace):
        """An existing guard.toml is a usage error (2); --force replaces it."""
        (workspace / "guard.toml").write_text('name = "mine"\n')
        refused = guard("policy", "init")
        assert refused.returncode == 2
        assert b"exists" in refused.stderr
        assert (workspace / "guard.toml").read_text() == 'name = "mine"\n'
        assert guard("policy", "init", "--force").returncode == 0
        assert "builtin:generic" in (workspace / "guard.toml").read_text()
