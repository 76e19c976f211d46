"""The 89 real StateTrace commands get sensible effects from the classifier."""

from __future__ import annotations

import pytest
from pwsh_helpers import CTX
from statetrace_commands import OWN_COUNT, load_commands

from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.powershell import classify_pwsh_argv

CASES = load_commands()
POLICY_SPECS = {"script", "unknown", "pwsh:import-module"}


def classify(command: str):
    return classify_pwsh_argv(
        ["pwsh", "-NoProfile", "-Command", command], CTX, classify_words
    )


class TestStateTraceCommands:
    """Each command's effects fit the level the plan gives it."""

    def test_count(self):
        assert len(CASES) >= OWN_COUNT

    @pytest.mark.parametrize("case", CASES, ids=[c["command"][:60] for c in CASES])
    def test_parses(self, case):
        specs = {c.spec for c in classify(case["command"])}
        assert "parse-error" not in specs

    @pytest.mark.parametrize(
        "case",
        [c for c in CASES if c["level"] == "L0"],
        ids=lambda c: c["command"][:60],
    )
    def test_l0_reads_only(self, case):
        effects = {e.value for c in classify(case["command"]) for e in c.effects}
        assert effects == {"read"}

    @pytest.mark.parametrize(
        "case",
        [c for c in CASES if c["level"] in {"L1", "L2"}],
        ids=lambda c: c["command"][:60],
    )
    def test_l1_l2_never_network(self, case):
        commands = classify(case["command"])
        effects = {e.value for c in commands for e in c.effects}
        assert not effects & {"network", "install"}
        dynamic_specs = {c.spec for c in commands if "dynamic" in c.effects}
        assert dynamic_specs <= POLICY_SPECS

    @pytest.mark.parametrize(
        "case",
        [
            c
            for c in CASES
            if c["command"].lstrip().lower().startswith(("pwsh", "tools", ".\\tools"))
        ],
        ids=lambda c: c["command"][:60],
    )
    def test_scripts_are_named(self, case):
        scripts = [c.script for c in classify(case["command"]) if c.spec == "script"]
        assert scripts
        assert all(s and s.startswith("Tools/") and s.endswith(".ps1") for s in scripts)

    def test_l3_forms(self):
        by_command = {c["command"]: c for c in CASES if c["level"] == "L3"}
        install = classify(
            "Install-Module -Name Pester -MinimumVersion 5.0.0 -Force -Scope CurrentUser"
        )
        assert {e.value for c in install for e in c.effects} == {"install", "network"}
        env = classify("$env:STATETRACE_AGENT_ALLOW_INSTALL = '1'")
        assert [n for c in env for n in c.env_sets] == [
            "STATETRACE_AGENT_ALLOW_INSTALL"
        ]
        assert len(by_command) == 9
