"""K6, second half: a workspace policy is pinned; one that appears or changes is refused.

Whenever a ``guard.toml`` came to be (a background process after the sweep,
an archive, a copy), the next guard refuses to judge by it until the
operator accepts it with ``guard policy accept``.
"""

from __future__ import annotations

import pytest

POLICY = 'name = "operator"\n'
CHANGED = 'name = "operator"\n[effects]\ndynamic = "L0"\n'


class TestPolicyPin:
    def test_first_use_pins_the_existing_policy(self, workspace, guard):
        """The policy found at first use is trusted and later runs use it."""
        (workspace / "guard.toml").write_text(POLICY)
        assert guard("run", "--", "true").returncode == 0
        assert guard("check", "--", "true").returncode == 0

    def test_rejects_a_changed_policy_until_accepted(self, workspace, guard):
        """A changed guard.toml stops every command (125) until the operator accepts it."""
        (workspace / "guard.toml").write_text(POLICY)
        assert guard("run", "--", "true").returncode == 0
        (workspace / "guard.toml").write_text(CHANGED)
        refused = guard("run", "--", "true")
        assert refused.returncode == 125
        assert b"not accepted: changed" in refused.stderr
        assert b"guard policy accept" in refused.stderr
        assert guard("check", "--", "true").returncode == 3
        accepted = guard("policy", "accept")
        assert accepted.returncode == 0, accepted.stderr
        assert guard("run", "--", "true").returncode == 0

    def test_rejects_a_policy_that_appeared(self, workspace, guard):
        """After a first use without guard.toml, one that appears is refused."""
        assert guard("run", "--", "true").returncode == 0
        (workspace / "guard.toml").write_text(CHANGED)
        refused = guard("run", "--", "true")
        assert refused.returncode == 125
        assert b"not accepted: appeared" in refused.stderr

    def test_nested_workspace_gets_no_trust_on_first_use(self, workspace, guard):
        """A repository made inside a known workspace must have its policy accepted."""
        assert guard("run", "--", "true").returncode == 0
        sub = workspace / "sub"
        (sub / ".git").mkdir(parents=True)
        (sub / "guard.toml").write_text(CHANGED)
        refused = guard("run", "--", "true", cwd=sub)
        assert refused.returncode == 125
        assert b"inside a known one" in refused.stderr

    def test_accept_is_refused_inside_a_guarded_command(self, workspace, guard):
        """An agent cannot accept its own policy."""
        (workspace / "guard.toml").write_text(CHANGED)
        result = guard("policy", "accept", env={"STATETRACE_GUARD_ACTIVE": "1"})
        assert result.returncode != 0
        assert b"operator action" in result.stderr

    @pytest.mark.parametrize("text", ["not toml [", 'name = "x"\nbogus = 1\n'])
    def test_accept_refuses_an_invalid_policy(self, workspace, guard, text):
        """An invalid file is never accepted (exit 3)."""
        (workspace / "guard.toml").write_text(text)
        assert guard("policy", "accept").returncode == 3
