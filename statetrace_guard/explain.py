"""A person-readable account of a judgement, and the same as data."""

from __future__ import annotations

from typing import Any

from statetrace_guard.decision import CommandVerdict, Verdict, describe_command
from statetrace_guard.evaluate import Judgement
from statetrace_guard.guidance import next_step
from statetrace_guard.levels import format_level
from statetrace_guard.policy import CompiledPolicy
from statetrace_guard.result import command_json, level_name, verdict_json

__all__ = ["explain_json", "explain_lines", "forcing_command"]


def forcing_command(verdict: Verdict) -> CommandVerdict | None:
    """The simple command that sets the whole command's required level."""
    if not verdict.commands:
        return None

    def weight(item: CommandVerdict) -> int:
        return 4 if item.required is None else int(item.required)

    return max(verdict.commands, key=weight)


def explain_json(judgement: Judgement, policy: CompiledPolicy) -> dict[str, Any]:
    """The account as data: the verdict plus reasons, hints and the forcing part."""
    verdict = judgement.verdict
    payload = verdict_json(verdict)
    payload["policy"] = {"name": policy.name, "source": policy.source}
    payload["commands"] = [
        {**command_json(item), "reasons": list(item.reasons), "hint": item.command.hint}
        for item in verdict.commands
    ]
    forcing = forcing_command(verdict)
    payload["forced_by"] = None if forcing is None else command_json(forcing)
    payload["parse_errors"] = list(judgement.classification.parse_errors)
    payload["alternatives"] = _hints(verdict)
    return payload


def explain_lines(judgement: Judgement, policy: CompiledPolicy) -> list[str]:
    """The account as lines of text for a terminal."""
    verdict = judgement.verdict
    lines = [
        f"policy {policy.name} ({policy.source}), session level {verdict.level.name}"
    ]
    for number, item in enumerate(verdict.commands, start=1):
        lines.extend(_command_lines(number, item))
    lines.extend(
        f"parse error: {error}" for error in judgement.classification.parse_errors
    )
    forcing = forcing_command(verdict)
    lowest = format_level(verdict.required_level)
    if forcing is not None:
        lines.append(
            f"lowest level that allows it: {lowest}, forced by "
            f"{describe_command(forcing.command)} (rule {forcing.rule})"
        )
    decision = "allowed" if verdict.allowed else "blocked"
    if verdict.contained:
        decision += f", contained in {verdict.level.name}'s kernel envelope"
    lines.append(f"decision at {verdict.level.name}: {decision}")
    lines.extend(f"lower-level alternative: {hint}" for hint in _hints(verdict))
    step = next_step(verdict)
    if step is not None:
        lines.append(f"next step: {step.text}")
    return lines


def _command_lines(number: int, item: CommandVerdict) -> list[str]:
    effects = ", ".join(sorted(effect.value for effect in item.effects))
    need = level_name(item.required) or "never"
    if item.opt_ins:
        need += " + " + ", ".join(f"{name}=1" for name in sorted(item.opt_ins))
    head = (
        f"{number}. {describe_command(item.command)}\n"
        f"   effects: {effects}; spec {item.command.spec}; "
        f"rule {item.rule}; needs {need}"
    )
    hosts = [
        f"   host {host.host}: {'allowed' if host.allowed else 'refused'} "
        f"(rule {host.rule})"
        for host in item.hosts
    ]
    return [head, *hosts, *(f"   - {reason}" for reason in item.reasons)]


def _hints(verdict: Verdict) -> list[str]:
    return list(
        dict.fromkeys(
            item.command.hint for item in verdict.commands if item.command.hint
        )
    )
