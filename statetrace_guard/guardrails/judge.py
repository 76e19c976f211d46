"""Tighten a verdict with the guardrails' findings (pure).

Each finding makes one simple command's verdict "never" under the finding's
rule, with its reason first; the whole verdict is then combined again the
usual way (the strictest wins), so ``guard run``, ``check``, ``explain``, the
records and ``replay`` all show the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from statetrace_guard.decision import CommandVerdict, Verdict, combine_verdicts
from statetrace_guard.guardrails.findings import Finding

__all__ = ["apply_findings", "note_unchecked"]


def apply_findings(
    verdict: Verdict,
    findings: Sequence[Finding],
    env: Mapping[str, str],
    parse_errors: tuple[str, ...] = (),
) -> Verdict:
    """Tighten the simple commands the findings name, then combine again."""
    if not findings:
        return verdict
    by_command: dict[int, list[Finding]] = {}
    for finding in findings:
        by_command.setdefault(finding.command, []).append(finding)
    commands = tuple(
        _tightened(item, by_command[index]) if index in by_command else item
        for index, item in enumerate(verdict.commands)
    )
    return combine_verdicts(commands, verdict.level, env, parse_errors)


def note_unchecked(
    verdict: Verdict, notes: Mapping[int, str], env: Mapping[str, str]
) -> Verdict:
    """Say which guardrail was not checked (replay, batch); the decision stands."""
    if not notes:
        return verdict
    commands = tuple(
        replace(item, reasons=(*item.reasons, f"{item.command.name}: {notes[index]}"))
        if index in notes
        else item
        for index, item in enumerate(verdict.commands)
    )
    return combine_verdicts(commands, verdict.level, env, _parse_errors(verdict))


def _parse_errors(verdict: Verdict) -> tuple[str, ...]:
    return tuple(
        reason.removeprefix("parse: ")
        for reason in verdict.reasons
        if reason.startswith("parse: ")
    )


def _tightened(item: CommandVerdict, findings: list[Finding]) -> CommandVerdict:
    command = item.command
    effects = ", ".join(sorted(effect.value for effect in item.effects)) or "nothing"
    lines = tuple(
        f"{command.name}: {effects} ({command.spec}) needs never: {finding.why}"
        for finding in findings
    )
    return replace(
        item,
        required=None,
        rule=findings[0].rule,
        reasons=(*lines, *item.reasons),
    )
