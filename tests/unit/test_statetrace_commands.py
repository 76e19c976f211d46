"""Every real StateTrace command gets the level the autonomy plan gives it.

``tests/assets/statetrace/commands.jsonl`` (a copy of
``shared/statetrace-commands.jsonl``) lists 89 commands from the StateTrace
project with the lowest level the plan allows each at. Each is judged as
``pwsh -NoProfile -Command <command>`` at every level with both opt-in
variables set, so L3 means "allowed at L3 with the operator's opt-in".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from statetrace_commands import OWN_COUNT, load_commands

from statetrace_guard.batch import argv_for
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy

OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1", "STATETRACE_AGENT_ALLOW_INSTALL": "1"}
WORKSPACE = Path("/tmp/statetrace-ws")
POLICY = load_policy(None)


COMMANDS = load_commands()


def lowest(argv: tuple[str, ...], env: dict[str, str]) -> str:
    place = make_place(WORKSPACE, WORKSPACE, WORKSPACE / "Logs", None, env)
    for level in Level:
        if evaluate(argv, level, POLICY, place).verdict.allowed:
            return level.name
    return "never"


def test_command_list_present():
    """The repository carries the list: the suite is complete on a fresh clone."""
    assert len(COMMANDS) >= OWN_COUNT


@pytest.mark.parametrize("case", COMMANDS, ids=[c["command"][:60] for c in COMMANDS])
def test_statetrace_command_level(case):
    """The lowest level allowing each command is the plan's level."""
    argv = argv_for(case["command"], case["shell"])
    assert lowest(argv, OPT_IN) == case["level"]


@pytest.mark.parametrize(
    "case", [c for c in COMMANDS if c["level"] == "L3"], ids=lambda c: c["command"][:60]
)
def test_l3_commands_need_the_opt_in(case):
    """Without the operator's opt-in no L3 command is allowed at any level."""
    argv = argv_for(case["command"], case["shell"])
    assert lowest(argv, {}) == "never"
