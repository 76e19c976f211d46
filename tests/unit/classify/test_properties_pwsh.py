"""Properties of the PowerShell classifier, checked with hypothesis."""

from __future__ import annotations

import gc
import json
import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pwsh_helpers import CTX

import statetrace_guard.classify.powershell as module
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.powershell import (
    classify_pwsh_argv,
    classify_pwsh_script,
)
from statetrace_guard.classify.registry import builtin_knowledge

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
PWSH_CASES = [
    json.loads(line)["command"]
    for path in sorted(CORPUS.glob("pwsh_*.jsonl"))
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
]
FRAGMENTS = [
    "gci",
    "iwr https://x.test",
    "Set-Content a.txt x",
    "|",
    ";",
    "&&",
    "||",
    "{",
    "}",
    "(",
    ")",
    "$(",
    "@(",
    "@{",
    "[IO.File]::",
    "WriteAllText(",
    "'",
    '"',
    "`",
    "$x",
    "& ",
    ". ",
    "-Path",
    "-Uri:",
    ">",
    "2>",
    "$null",
    "\n",
    " ",
    "if ($x)",
    "foreach",
    "function f",
    "param(",
    "<#",
    "#>",
    "@'\n",
    "\n'@",
    "-enc",
    ",",
    "::",
    ".Invoke()",
]
RANK = {"read": 0, "write": 1, "network": 3, "install": 3, "dynamic": 4}
BUDGET_S = 0.050
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def rank(text: str) -> int:
    commands = classify_pwsh_script(text, CTX, classify_words)
    return max(RANK[e.value] for c in commands for e in c.effects)


def effect_set(text: str) -> set[str]:
    return {
        e.value
        for c in classify_pwsh_script(text, CTX, classify_words)
        for e in c.effects
    }


def _once(text: str) -> float:
    module._cached_script.cache_clear()
    gc.disable()  # the walk's own CPU time, not a collection of the test heap
    try:
        start = time.thread_time()
        commands = classify_pwsh_script(text, CTX, classify_words)
        elapsed = time.thread_time() - start
    finally:
        gc.enable()
    assert commands
    assert all(c.effects for c in commands)
    return elapsed


def timed(text: str) -> float:
    """Seconds to classify ``text``; a second try absorbs a GC or scheduler pause."""
    elapsed = _once(text)
    return elapsed if elapsed < BUDGET_S else _once(text)


_once("Start-Job { iwr https://x.test } | Set-Content a.txt")  # load the grammar once


class TestNeverRaises:
    """Any input classifies, fast, to a non-empty result."""

    @PROPERTY
    @given(st.text(max_size=2000))
    def test_random_text(self, text):
        assert timed(text) < BUDGET_S

    @PROPERTY
    @given(st.binary(max_size=2000))
    def test_random_bytes(self, data):
        assert timed(data.decode("utf-8", "replace")) < BUDGET_S

    @PROPERTY
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
    def test_shaped_scripts(self, parts):
        assert timed(" ".join(parts)) < BUDGET_S

    @PROPERTY
    @given(st.sampled_from(PWSH_CASES), st.integers(0, 10_000), st.text(max_size=5))
    def test_corpus_mutations(self, command, where, insert):
        at = where % (len(command) + 1)
        assert timed(command[:at] + insert + command[at:]) < BUDGET_S

    @PROPERTY
    @given(st.lists(st.text(max_size=30), max_size=8))
    def test_random_argv(self, words):
        commands = classify_pwsh_argv(["pwsh", *words], CTX, classify_words)
        assert commands
        assert all(c.effects for c in commands)

    @pytest.mark.parametrize(
        "text",
        [
            "gci;" * 16_384,
            "(" * 30_000,
            "{" * 30_000,
            "$(" * 20_000,
            "iwr https://x.test | " * 3000 + "gci",
            "'" + "a" * 65_000 + "'",
            "a" * 65_536,
            random.Random(7).choice(FRAGMENTS) * 4000,
        ],
    )
    def test_64k_inputs(self, text):
        assert timed(text[:65_536]) < BUDGET_S


_NAMES = builtin_knowledge().names("pwsh")
ALIASES = {a: c for a, c in _NAMES.items() if a != c}
SPECS = sorted(
    {c for c in _NAMES.values() if builtin_knowledge().cmdlet(c) is not None}
)


def _spellings(command: str, rng: random.Random) -> list[str]:
    """Case, alias, backtick, quote and prefix variants of ``Name args``."""
    name, _, rest = command.partition(" ")
    canonical = ALIASES.get(name.lower(), name.lower())
    out = [name.swapcase() + " " + rest, f"& '{name}' {rest}", f'& "{name}" {rest}']
    out.extend(a + " " + rest for a, c in ALIASES.items() if c == canonical)
    out.append(canonical.upper() + " " + rest)
    safe = [i for i in range(1, len(name)) if name[i].lower() not in "0abefnrtuvx"]
    if safe:
        i = rng.choice(safe)
        out.append(name[:i] + "`" + name[i:] + " " + rest)
    return out


SPELLING_BASES = [
    "Invoke-WebRequest https://x.test",
    "Invoke-WebRequest -Uri https://x.test -OutFile a.txt",
    "Get-Content README.md",
    "Set-Content -Path a.txt -Value x",
    "Remove-Item -Path Logs/Sessions -Recurse",
    "Copy-Item a.txt -Destination guard.toml",
    "Invoke-Expression gci",
    "Start-Process calc",
    "Install-Module Pester",
    "Get-ChildItem -Recurse",
    "Out-File -FilePath x.txt",
    "Invoke-RestMethod https://x.test",
]


class TestSpellingInvariant:
    """Variants of a command get the same effects."""

    @pytest.mark.parametrize("base", SPELLING_BASES)
    def test_variants(self, base):
        expected = effect_set(base)
        rng = random.Random(base)
        for variant in _spellings(base, rng):
            assert effect_set(variant) == expected, variant

    @pytest.mark.parametrize(
        ("base", "variant"),
        [
            ("Set-Content -Path a.txt -Value x", "Set-Content -Pat a.txt -Val x"),
            ("Set-Content -Path a.txt -Value x", "Set-Content -PATH a.txt -VALUE x"),
            (
                "Set-Content -Path a.txt -Value x",
                "Set-Content \u2013Path a.txt \u2013Value x",
            ),
            ("Invoke-WebRequest -Uri https://x.test", "iwr -Ur https://x.test"),
            (
                "Invoke-WebRequest -Uri https://x.test -OutFile a",
                "iwr -Ur https://x.test -OutF a",
            ),
            ("Remove-Item -Recurse x", "Remove-Item -Rec x"),
            ("Get-ChildItem -Recurse -Filter *.ps1", "gci -rec -fil *.ps1"),
        ],
    )
    def test_parameter_prefixes(self, base, variant):
        assert effect_set(variant) == effect_set(base)

    @pytest.mark.parametrize("name", [n for n in SPECS if n.count("-") == 1][:150])
    def test_case_of_every_cmdlet(self, name):
        assert effect_set(name + " x") == effect_set(name.upper() + " x")


class TestMonotonic:
    """Adding a pipeline stage or a list command never lowers the level."""

    @PROPERTY
    @given(st.sampled_from(PWSH_CASES), st.sampled_from(PWSH_CASES))
    def test_pipeline_stage(self, first, second):
        joined = f"{first} | {second}"
        assert rank(joined) >= max(rank(first), rank(second))

    @PROPERTY
    @given(st.sampled_from(PWSH_CASES), st.sampled_from(PWSH_CASES))
    def test_list(self, first, second):
        for joiner in ("; ", " && ", " || ", "\n"):
            assert rank(first + joiner + second) >= max(rank(first), rank(second))

    @PROPERTY
    @given(st.sampled_from(PWSH_CASES))
    def test_wrappers(self, command):
        wrapped = [
            "& { " + command + " }",
            "if ($true) { " + command + " }",
            "$x = $(" + command + ")",
        ]
        for text in wrapped:
            assert rank(text) >= rank(command), text
