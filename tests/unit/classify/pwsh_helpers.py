"""Shared helpers for the PowerShell classifier tests."""

from __future__ import annotations

from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import ClassifyContext, SimpleCommand
from statetrace_guard.classify.powershell import (
    classify_pwsh_argv,
    classify_pwsh_script,
)

CTX = ClassifyContext("/work/ws", "/work/ws")


def script(text: str) -> list[SimpleCommand]:
    return classify_pwsh_script(text, CTX, classify_words)


def argv(*words: str) -> list[SimpleCommand]:
    return classify_pwsh_argv(list(words), CTX, classify_words)


def effects(text: str) -> list[str]:
    return sorted({e.value for c in script(text) for e in c.effects})


def argv_effects(*words: str) -> list[str]:
    return sorted({e.value for c in argv(*words) for e in c.effects})


def field(text: str, name: str) -> list[str]:
    """Every value of a tuple field (writes, redirects, urls, env_sets) in order."""
    return [v for c in script(text) for v in getattr(c, name)]
