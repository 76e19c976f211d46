"""Versioned JSON forms of the guard's answers (``check --json``, ``explain``)."""

from __future__ import annotations

from typing import Any

from statetrace_guard.decision import CommandVerdict, Verdict
from statetrace_guard.guidance import next_step
from statetrace_guard.levels import Level

__all__ = ["SCHEMA_VERSION", "command_json", "level_name", "verdict_json"]

SCHEMA_VERSION = 1


def level_name(level: Level | None) -> str | None:
    """``L0``..``L3``, or None when no level allows it."""
    return None if level is None else level.name


def command_json(verdict: CommandVerdict) -> dict[str, Any]:
    """One simple command: its argv, effects, the rule that decided, and more."""
    command = verdict.command
    return {
        "argv": list(command.argv),
        "shell": command.shell,
        "name": command.name,
        "effects": sorted(effect.value for effect in verdict.effects),
        "rule": verdict.rule,
        "spec": command.spec,
        "contained": verdict.contained,
        "required_level": level_name(verdict.required),
        "opt_in": sorted(verdict.opt_ins),
        "writes": list(command.written),
        "urls": list(command.urls),
        "hosts": [
            {"host": host.host, "allowed": host.allowed, "rule": host.rule}
            for host in verdict.hosts
        ],
    }


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """The object ``guard check --json`` prints for one command line.

    ``next_step`` is the sentence a blocked agent acts on (None when allowed):
    the same text ``guard run`` prints after ``guard: next:``.
    """
    step = next_step(verdict)
    return {
        "schema_version": SCHEMA_VERSION,
        "decision": "allow" if verdict.allowed else "block",
        "level": verdict.level.name,
        "required_level": level_name(verdict.required_level),
        "opt_in": sorted(verdict.opt_ins),
        "effects": sorted(effect.value for effect in verdict.effects),
        "contained": verdict.contained,
        "commands": [command_json(command) for command in verdict.commands],
        "reasons": list(verdict.reasons),
        "next_step": None if step is None else step.text,
    }
