from __future__ import annotations

import pytest

from statetrace_guard.errors import SessionError
from statetrace_guard.sessions import operator


class TestCmdline:
    @pytest.mark.parametrize(
        "cmdline",
        [
            ["guard", "run", "--", "guard", "approve", "x"],
            ["/usr/local/bin/guard", "run", "--level", "L2", "--", "bash"],
            ["python3", "-m", "statetrace_guard", "run", "--", "sh"],
            ["/venv/bin/python", "/src/statetrace_guard/__main__.py", "run", "--", "x"],
            ["C:\\Tools\\guard.exe", "run", "--", "pwsh"],
            ["/venv/bin/python3.11", "/venv/bin/guard", "run", "--", "ls"],
            ["python3", "-I", "-m", "statetrace_guard", "run", "--level", "L1"],
            ["/venv/bin/python3.11", "-m", "statetrace_guard.daemon.launcher", "15"],
        ],
    )
    def test_accepts_guard_runs(self, cmdline):
        """Every spelling of `guard run` is recognised."""
        assert operator.guard_run_cmdline(cmdline)

    @pytest.mark.parametrize(
        "cmdline",
        [
            [],
            ["bash"],
            ["guard", "approve", "x"],
            ["guard", "check", "--", "ls"],
            ["/bin/guardian", "run"],
            ["python", "-m", "pytest", "run"],
            # Wrappers that start guard as their child are not guard runs.
            ["timeout", "60", "guard", "run", "--", "make"],
            ["strace", "-f", "-o", "t.txt", "/venv/bin/guard", "run", "--", "ls"],
            ["bash", "-c", "guard run -- ls"],
            [
                "python3",
                "-c",
                "import os; os.system('guard run -- ls')",
                "guard",
                "run",
            ],
            ["guard", "check", "--", "make", "run"],
        ],
    )
    def test_rejects_others(self, cmdline):
        """Other command lines are not guard runs."""
        assert not operator.guard_run_cmdline(cmdline)


class TestRefusal:
    def test_active_variable_refuses(self):
        """The variable guard sets in every child refuses operator actions."""
        assert "STATETRACE_GUARD_ACTIVE" in (
            operator.operator_refusal({"STATETRACE_GUARD_ACTIVE": ""}, []) or ""
        )

    def test_ancestor_refuses(self):
        """A guard run among the ancestors refuses even with a clean env."""
        why = operator.operator_refusal({}, [["bash"], ["guard", "run", "--", "bash"]])
        assert why is not None
        assert "ancestor" in why

    def test_operator_may_act(self):
        """No variable and no guarded ancestor: the operator may act."""
        assert operator.operator_refusal({}, [["bash"], ["sshd"]]) is None

    def test_real_tree_is_walked(self):
        """The real ancestor walk yields command lines (pytest is not guard run)."""
        assert list(operator.ancestor_cmdlines())
        operator.require_operator("test", {})

    def test_require_operator_raises(self):
        """require_operator raises a SessionError naming the action."""
        with pytest.raises(SessionError, match="guard approve is an operator action"):
            operator.require_operator("guard approve", {"STATETRACE_GUARD_ACTIVE": "1"})
