"""Render a compiled policy for people (``guard policy show``)."""

from __future__ import annotations

from statetrace_guard.levels import Effect, Level, format_level
from statetrace_guard.policy import CompiledPolicy, CompiledRule

__all__ = ["policy_lines"]

_TARGET_WIDTH = 50


def policy_lines(policy: CompiledPolicy, only: Level | None = None) -> list[str]:
    """Lines describing the policy; with ``only``, just what that level allows."""
    lines = [
        f"policy {policy.name} from {policy.source} (sha256 {policy.sha256[:16]})",
        "effects (when no rule names the command):",
    ]
    for effect in Effect:
        required = policy.effect_levels[effect]
        if effect is Effect.DYNAMIC and policy.dynamic_contained:
            lines.append(
                f"  {effect.value:<8} contained (at any level, inside its kernel "
                "envelope; never where the kernel cannot enforce it)"
            )
        elif _shown(required, only):
            lines.append(f"  {effect.value:<8} {format_level(required)}")
    lines.append("invariants: network and install need L3 and the opt-in variable = 1;")
    lines.append("  writes to the guard's files or outside the workspace: never")
    lines.append("rules:")
    lines.extend(_rule_line(rule) for rule in policy.rules if _shown(rule.level, only))
    return lines


def _shown(required: Level | None, only: Level | None) -> bool:
    return only is None or (required is not None and required <= only)


def _rule_line(rule: CompiledRule) -> str:
    what = sorted(rule.programs) or [
        "script " + (rule.script_pattern.pattern if rule.script_pattern else "")
    ]
    target = ", ".join(what)
    if len(target) > _TARGET_WIDTH:
        target = target[: _TARGET_WIDTH - 3] + "..."
    tags = " [test]" if rule.test else ""
    return f"  {format_level(rule.level):<5} {rule.id:<28} {target}{tags}"
