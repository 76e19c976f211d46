"""Commands that assign, clear or steer variables report them in env_sets."""

from __future__ import annotations

import pytest

from statetrace_guard.classify.argv import classify_argv
from statetrace_guard.classify.assigns import arithmetic_names
from statetrace_guard.classify.model import ClassifyContext
from statetrace_guard.levels import Effect

CTX = ClassifyContext("/ws", "/ws")
NET = "STATETRACE_AGENT_ALLOW_NET"


def env_sets(argv: tuple[str, ...]) -> set[str]:
    found = classify_argv(argv, CTX).commands
    return {name for command in found for name in command.env_sets}


def is_dynamic(argv: tuple[str, ...]) -> bool:
    return Effect.DYNAMIC in classify_argv(argv, CTX).effects


class TestArithmeticNames:
    @pytest.mark.parametrize(
        ("text", "names"),
        [
            ("X=1", ("X",)),
            ("X += 2", ("X",)),
            ("a[i]<<=1", ("a",)),
            ("i++", ("i",)),
            ("--j", ("j",)),
            ("x == 1", ()),
            ("1 + 2", ()),
            ("a=b=1", ("a", "b")),
        ],
    )
    def test_accepts_assignment_forms(self, text, names):
        """Each assignment operator names the variable it assigns."""
        assert arithmetic_names(text) == names


class TestBashAssigns:
    @pytest.mark.parametrize(
        "script",
        [
            f"read {NET} <<< 1",
            f"read -ra {NET} <<< 1",
            f"printf -v {NET} 1",
            f"mapfile -t {NET} < f",
            f"readarray {NET} < f",
            f"getopts a {NET}",
            f"wait -n -p {NET}",
            f"for {NET} in 1; do :; done",
            f"select {NET} in 1; do :; done",
            f"(( {NET}=1 ))",
            f": $(( {NET}++ ))",
            f": ${{{NET}:=1}}",
            f"let {NET}=1",
            f"unset {NET}",
            f"env -u {NET} ls",
            f"declare -n r={NET}",
            f"a='{NET}=1'; (( a ))",
        ],
    )
    def test_rejects_hidden_assignment(self, script):
        """The assigned opt-in variable is named for the decision.

        One variable table for every shell: the operator's opt-ins are the
        decision's (L3, only when already 1; tests/corpus/optin_bypasses.jsonl),
        as ``$env:STATETRACE_AGENT_ALLOW_NET = '1'`` in PowerShell.
        """
        argv = ("bash", "-c", script)
        assert NET in env_sets(argv)
        assert not is_dynamic(argv)

    @pytest.mark.parametrize(
        "script",
        [
            "read STATETRACE_GUARD_LEVEL <<< L3",
            "printf -v STATETRACE_GUARD_POLICY x",
            "(( STATETRACE_GUARD_ACTIVE=0 ))",
            "export STATETRACE_TASK=x",
        ],
    )
    def test_rejects_guard_variables(self, script):
        """Guard's own variables are hijacks in every form: dynamic."""
        assert is_dynamic(("bash", "-c", script))

    @pytest.mark.parametrize(
        "script",
        ["export $X=1", "export ${X}=1", 'declare "$N=1"', 'printf -v "$n" 1'],
    )
    def test_rejects_computed_names(self, script):
        """A variable named at run time could be any variable: dynamic."""
        assert is_dynamic(("bash", "-c", script))

    @pytest.mark.parametrize(
        "script",
        ["read -r x < f", "printf '%s' x", "let i++", "for f in a; do :; done"],
    )
    def test_accepts_ordinary_assignments(self, script):
        """Ordinary names stay read-only."""
        assert not is_dynamic(("bash", "-c", script))


class TestCmdAndPwsh:
    @pytest.mark.parametrize(
        "argv",
        [
            ("cmd", "/c", f"set {NET}=1"),
            ("cmd", "/c", f"setx {NET} 1"),
            ("pwsh", "-Command", f"Set-Variable -Name env:{NET} -Value 1"),
            ("pwsh", "-Command", f"sv env:{NET} 1"),
            ("pwsh", "-Command", f"Set-Item Variable:{NET} 1"),
        ],
    )
    def test_rejects_unreported_sets(self, argv):
        """cmd's set, setx inside cmd, and PowerShell's variable cmdlets."""
        assert NET in env_sets(argv)

    def test_setx_in_cmd_is_the_windows_native(self):
        """cmd /c setx goes through the Windows-native table."""
        found = classify_argv(("cmd", "/c", f"setx {NET} 1"), CTX).commands
        assert [c.spec for c in found][-1] == "windows:setx"
