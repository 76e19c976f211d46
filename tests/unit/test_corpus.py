"""The command corpus: every case's effects and the lowest level that allows it.

Cases live in ``tests/corpus/*.jsonl``, one per line:
``{"shell": "bash"|"pwsh"|"exec", "command": ..., "effects": [...],
"level": "L0".."L3"|"never", "spec": ..., "note": ...}``, and optionally
``"enforcement": "kernel"`` for a case judged where the kernel enforces the
level's envelope (contained execution, loopback traffic; "none" otherwise:
loopback traffic is network then). The lowest level
is found by deciding at every level with both opt-in variables set; "never"
means no level allows it. ``spec`` names the registry entry that decided:
the simple command that needs the most, a shell that only carries a script
left aside. The corpus is about classification, so the built-in policy
gets one ``[[network]]`` entry allowing every host name (addresses that are
not globally routable stay refused, as the egress proxy refuses them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statetrace_guard.batch import argv_for
from statetrace_guard.decision import Enforcement, Verdict
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy_bytes

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1", "STATETRACE_AGENT_ALLOW_INSTALL": "1"}
WORKSPACE = Path("/tmp/guard-corpus-ws")
BUILTIN = (
    Path(__file__).resolve().parents[2] / "statetrace_guard" / "default_policy.toml"
)
POLICY = load_policy_bytes(
    BUILTIN.read_bytes() + b'\n[[network]]\nid = "any-host"\nhost = "*"\n', "corpus"
)


def load_cases() -> list[tuple[str, int, dict]]:
    cases = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                cases.append((path.name, number, json.loads(line)))
    return cases


CASES = load_cases()


# Shells that only carry a script: the commands inside decide.
_CARRIERS = frozenset(
    {
        "posix:bash",
        "posix:sh",
        "posix:dash",
        "posix:zsh",
        "posix:ksh",
        "posix:yash",
        "cmd:cmd",
    }
)


def deciding_spec(verdict: Verdict) -> str:
    """The spec of the simple command that needs the most (first such one)."""

    def rank(index: int) -> tuple[int, int, int]:
        command = verdict.commands[index]
        need = 5 if command.required is None else int(command.required)
        carrier = command.command.spec in _CARRIERS
        return (need, 0 if carrier else 1, -index)

    if not verdict.commands:
        return ""
    best = max(range(len(verdict.commands)), key=rank)
    return verdict.commands[best].command.spec


def lowest_level(
    argv: tuple[str, ...], enforcement: Enforcement = "none"
) -> tuple[str, list[str], str]:
    place = make_place(
        WORKSPACE, WORKSPACE, WORKSPACE / "Logs", None, OPT_IN, enforcement
    )
    effects: list[str] = []
    spec = ""
    for level in Level:
        verdict = evaluate(argv, level, POLICY, place).verdict
        effects = sorted(effect.value for effect in verdict.effects)
        spec = deciding_spec(verdict)
        if verdict.allowed:
            return level.name, effects, spec
    return "never", effects, spec


@pytest.mark.parametrize(
    ("file", "line", "case"), CASES, ids=[f"{f}:{n}" for f, n, _ in CASES]
)
def test_corpus_case(file, line, case):
    """Each case gets its expected effects and lowest allowing level."""
    argv = argv_for(case["command"], case["shell"])
    level, effects, spec = lowest_level(argv, case.get("enforcement", "none"))
    expected = (case["level"], sorted(case["effects"]), case["spec"])
    assert (level, effects, spec) == expected, case.get("note", "")


def test_corpus_is_large_enough():
    """Issue 3 asks for at least 600 cases."""
    assert len(CASES) >= 600


def test_no_network_or_write_allowed_at_l0():
    """Targets: nothing with the network or write effect is allowed at L0."""
    offenders = [
        c["command"]
        for _, _, c in CASES
        if {"network", "write"} & set(c["effects"]) and c["level"] == "L0"
    ]
    assert offenders == []


def test_no_network_below_l3():
    offenders = [
        c["command"]
        for _, _, c in CASES
        if "network" in c["effects"] and c["level"] in {"L0", "L1", "L2"}
    ]
    assert offenders == []


def test_no_network_below_l3_where_the_kernel_enforces():
    """Every network case stays L3 or never also where loopback is fenced.

    Loopback traffic is allowed at L1 only under kernel enforcement; judged
    that way, no other case of the corpus may lose its network effect.
    """
    offenders = []
    for _, _, case in CASES:
        if "network" not in case["effects"]:
            continue
        argv = argv_for(case["command"], case["shell"])
        level, effects, _ = lowest_level(argv, "kernel")
        if level in {"L0", "L1", "L2"} and not _loopback_request(case["command"]):
            offenders.append((case["command"], level, effects))
    assert offenders == []


def _loopback_request(command: str) -> bool:
    """The corpus's own loopback requests, as judged without enforcement."""
    return any(
        c["command"] == command and c.get("enforcement") == "kernel"
        for _, _, c in CASES
        if c["level"] == "L1"
    )
