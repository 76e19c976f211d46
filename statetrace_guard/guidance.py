"""What a blocked agent should do next, in words an agent can act on.

Every block prints two lines on stderr: :func:`block_line` (what was
blocked, what it needs, and the part that forced it) and ``guard: next: ...``
from :func:`next_step`; ``check --json`` and the hooks carry the same text as
``next_step``. The wording is an interface (agents act on it and tests pin
it), so it lives here and nowhere else:

* a level would allow it: the exact ``guard escalate --to LX --reason "..."``
  (and the opt-in variable the operator must also set for L3);
* only the operator's opt-in is missing: that variable;
* no level allows it: why, what would be allowed instead, the rule a
  ``guard.toml`` could add when a rule can help at all, and that retrying
  under another spelling halts the session;
* the session refuses (halted, a budget reached, an approval used up): who
  must do what.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from statetrace_guard.decision import CommandVerdict, Verdict, describe_command
from statetrace_guard.levels import Level, format_level

__all__ = [
    "RETRY_WARNING",
    "NextStep",
    "because",
    "block_line",
    "escalate_command",
    "forcing",
    "halted_step",
    "next_line",
    "next_step",
    "outcome_lines",
    "refusal_step",
    "uncontainable_step",
]

RETRY_WARNING = "retrying under another spelling will halt the session"
Kind = Literal["escalate", "opt-in", "operator", "never", "resume", "contain"]

# Generic deciding reasons say nothing the classifier's own reason does not.
_GENERIC_WHY = re.compile(r"^the policy's level for \w+$|^reads only$")
# Characters that would change a double-quoted shell word.
_UNSAFE_IN_QUOTES = re.compile(r'["$`\\!\n\r]')
_REASON_LIMIT = 80
_UNKNOWN_CODE = "runs code the classifier cannot know"
_PRIVILEGE_SPECS = re.compile(
    r"^posix:(sudo|doas|su|runuser|pkexec|run0|chroot|nsenter|unshare|setpriv|capsh)$"
)


@dataclass(frozen=True, slots=True)
class NextStep:
    """One next step: its kind, the sentence, and a command to run if any."""

    kind: Kind
    text: str
    command: str | None = None


def forcing(verdict: Verdict) -> CommandVerdict | None:
    """The blocked simple command with the strictest requirement.

    ``never`` outranks any level, so ``curl x | sh`` is answered for the
    ``sh`` (no level allows it), not for the ``curl`` (L3 would).
    """
    blocked = [
        item
        for item in verdict.commands
        if item is verdict.blocking
        or item.required is None
        or item.required > verdict.level
    ]
    if not blocked:
        return verdict.blocking

    def weight(item: CommandVerdict) -> int:
        return 4 if item.required is None else int(item.required)

    return max(blocked, key=weight)


def block_line(verdict: Verdict) -> str:
    """The first line of a block: the command, what it needs, and why.

    It names the part that forced the block: the strictest blocked simple
    command, and the reason behind it (an environment prefix such as
    ``STATETRACE_X=1 cmd`` is named, not hidden behind ``cmd``).
    """
    item = forcing(verdict)
    if item is None:  # pragma: no cover - only called for blocked verdicts
        return "guard: blocked"
    host = verdict.host_block
    if host is not None:  # level and opt-in suffice; [[network]] refuses the host
        return (
            f"guard: blocked: {describe_command(item.command)} (network): "
            f"{host.reason} (rule {host.rule})"
        )
    effects = ", ".join(sorted(effect.value for effect in item.effects))
    need = format_level(item.required)
    # At a level that suffices, what blocks is the operator's opt-in: name it.
    if item.required is not None and item.opt_ins and verdict.level >= item.required:
        need += " with " + " and ".join(f"{name}=1" for name in sorted(item.opt_ins))
    line = (
        f"guard: blocked: {describe_command(item.command)} ({effects}) needs {need}, "
        f"session is {verdict.level.name} (rule {item.rule}): "
    )
    if not item.rule.startswith(("commit:", "adr:")):
        return line + because(item)
    # A guardrail's finding says what to fix; every further finding gets a line.
    fixes = [
        reason.partition(" needs never: ")[2]
        for reason in item.reasons
        if " needs never: " in reason
    ]
    if not fixes:
        return line + because(item)
    return line + fixes[0] + "".join(f"\nguard: also: {fix}" for fix in fixes[1:])


def because(item: CommandVerdict) -> str:
    """The reason a command needs what it needs, in one clause."""
    said = item.command.reasons[0] if item.command.reasons else ""
    why = item.why
    rule = item.matched
    if rule is not None and why == f"rule {rule.id}" and rule.description:
        return f"rule {rule.id}: {rule.description}"
    if not why or _GENERIC_WHY.match(why):
        return said or why or "no reason given"
    if said and why.startswith(_UNKNOWN_CODE):
        return f"{said}{why.removeprefix(_UNKNOWN_CODE)}"
    return why


def next_line(step: NextStep) -> str:
    """The second line of a block."""
    return f"guard: next: {step.text}"


def escalate_command(level: Level, reason: str) -> str:
    r"""The exact ``guard escalate`` an agent can run (quoted for any shell).

    A Windows separator becomes ``/`` (``Data\WLLS`` stays readable); the
    other characters that would change a double-quoted word are dropped.
    """
    safe = _UNSAFE_IN_QUOTES.sub("", reason.replace("\\", "/")).strip()
    if len(safe) > _REASON_LIMIT:
        safe = safe[: _REASON_LIMIT - 3] + "..."
    return f'guard escalate --to {level.name} --reason "{safe}"'


def next_step(verdict: Verdict, *, managed: bool | None = None) -> NextStep | None:
    """The next step for a blocked verdict; None when it is allowed.

    Args:
        verdict: the judgement.
        managed: whether the session was started by the operator (only such
            a session can be escalated); None when unknown (``guard check``).
    """
    item = forcing(verdict)
    if item is None or verdict.allowed:
        return None
    host = verdict.host_block
    if host is not None:
        return NextStep(
            "operator",
            f"{host.host} is not a host this policy lets L3 reach: the operator "
            f"adds a [[network]] entry for it to guard.toml, or use a host it "
            f"allows; {RETRY_WARNING}",
        )
    if item.required is None:
        return _never(item)
    if verdict.level >= item.required:  # only the operator's opt-in is missing
        names = " and ".join(f"{name}=1" for name in sorted(item.opt_ins))
        return NextStep(
            "opt-in",
            f"the operator must set {names} for this session "
            f"({verdict.level.name} is in force; nothing else is missing)",
        )
    if item.required < Level.L2:
        return NextStep(
            "operator",
            f"{item.required.name} is the operator's to give: a session started at "
            f"{item.required.name} (guard session start --level "
            f"{item.required.name} ...); escalation covers L2 and L3",
        )
    return _escalate(item, item.required, managed)


def _escalate(item: CommandVerdict, level: Level, managed: bool | None) -> NextStep:
    reason = f"{describe_command(item.command, 50)} needs {level.name} ({item.rule})"
    command = escalate_command(level, reason)
    text = f"ask the operator for {level.name}: {command}"
    if item.opt_ins:
        names = " and ".join(f"{name}=1" for name in sorted(item.opt_ins))
        text += f"; the operator must also set {names}"
    if managed is False:
        text += (
            " (escalation needs a session the operator started: "
            "guard session start --task ID --plan FILE)"
        )
    else:
        text += "; retry once it is approved"
    return NextStep("escalate", text, command)


def _never(item: CommandVerdict) -> NextStep:
    parts = [f"no level allows it: {because(item)}"]
    instead = _instead(item)
    if instead:
        parts.append(f"instead: {instead}")
    rule = _rule_hint(item)
    if rule:
        parts.append(rule)
    parts.append(RETRY_WARNING)
    return NextStep("never", "; ".join(parts))


def _instead(item: CommandVerdict) -> str | None:
    """What would be allowed in its place, when the guard knows."""
    choices = {
        "write-outside-workspace": "write under the workspace or $TMPDIR",
        "self-protect": (
            "leave the guard's files (Logs/Sessions, Logs/NetOps, Logs/Approvals, "
            "guard.toml, guard's home) to the guard and write elsewhere in the "
            "workspace"
        ),
        "protect-guard-variables": (
            "leave STATETRACE_GUARD_* unset: the operator configures the guard"
        ),
    }
    found = choices.get(item.rule)
    if found is None and item.rule == "effect:dynamic":
        found = _dynamic_instead(item)
    hint = item.command.hint
    if hint:
        found = f"{found}, or {hint}" if found else hint
    return found


def _dynamic_instead(item: CommandVerdict) -> str | None:
    spec = item.command.spec
    if "may come from the network" in item.why:
        return (
            "download in one command (L3), read what arrived, and run it in a "
            "command of its own"
        )
    if spec == "unparsed":
        return "put the script in a file in the workspace and run that, or split it"
    if _PRIVILEGE_SPECS.match(spec):
        return "run it without changing privilege"
    return None


def _rule_hint(item: CommandVerdict) -> str | None:
    """The guard.toml rule that would name the command, where a rule can help."""
    if item.rule != "effect:dynamic" or "may come from the network" in item.why:
        return None
    spec = item.command.spec
    if spec == "unparsed" or _PRIVILEGE_SPECS.match(spec):
        return None
    name = item.command.name or "program"
    ident = re.sub(r"[^A-Za-z0-9_.:-]+", "-", item.command.script or name).strip("-")
    target = (
        f'script = ["{item.command.script}"]'
        if item.command.script
        else f'program = ["{name}"]'
    )
    return (
        f'the operator can name it in guard.toml: [[rules]] id = "{ident or "x"}" '
        f'{target} level = "L1"'
    )


def refusal_step(
    refusal: str, verdict: Verdict, session_id: str, *, halted: bool
) -> NextStep:
    """The next step when the session, not the policy, refuses a command."""
    if halted:
        return halted_step(session_id)
    required = verdict.required_level or verdict.level
    reason = f"{describe_command(verdict.commands[0].command, 50)}: {refusal}"
    command = escalate_command(max(required, Level.L2), reason)
    return NextStep(
        "escalate", f"the approval is no longer enough; ask again: {command}", command
    )


def halted_step(session_id: str) -> NextStep:
    """The next step for a halted session (a budget or a denial loop)."""
    return NextStep(
        "resume",
        f"stop: the operator runs guard session resume {session_id}; "
        "nothing runs in this session until then",
    )


def uncontainable_step(missing: str) -> NextStep:
    """The next step when contained code cannot be contained on this run."""
    return NextStep(
        "contain",
        f"this run cannot enforce {missing}: the operator checks `guard doctor`, "
        "or names the program in a guard.toml rule; " + RETRY_WARNING,
    )


_NAMED_LEFTOVERS = 5


def outcome_lines(outcome: Mapping[str, Any]) -> list[str]:
    """Lines about how a run ended that the agent would not see otherwise.

    A program that could not be executed (exit 127, or 125 when the sandbox
    could not be set up) says why; processes left running when the command
    ended are named, in one line, with how to keep such a process.
    """
    lines = []
    error = outcome.get("error")
    if error and outcome.get("exit_status") in {125, 127}:
        lines.append(f"guard: {error}")
    leftover = [
        item for item in outcome.get("leftover") or () if isinstance(item, dict)
    ]
    if leftover:
        names = [
            f"{item.get('name') or '?'} ({item.get('pid')})"
            for item in leftover[:_NAMED_LEFTOVERS]
        ]
        more = len(leftover) - len(names)
        listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
        lines.append(
            f"guard: ended {len(leftover)} process(es) left running when the "
            f"command ended: {listed}"
        )
    return lines
