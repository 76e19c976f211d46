"""What refuses a commit or an ADR-gated command: pure, and light to import.

A :class:`Finding` names the simple command, the rule (``commit:<id>``,
``commit:secret``, ``commit:guard-logs``, ``commit:uninspected``,
``adr:<kind>``) and one clause saying what would happen and how to fix it.
The git hook imports this module without the decision layer;
:mod:`.judge` turns findings into a tightened verdict.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from statetrace_guard.guardrails.commits import CommitIntent
from statetrace_guard.guardrails.facts import AdrFacts, CommitFacts
from statetrace_guard.guardrails.rules import CommitRules
from statetrace_guard.guardrails.scan import MESSAGE_PATH

if TYPE_CHECKING:
    from statetrace_guard.guardrails.adr import AdrNeed
    from statetrace_guard.guardrails.config import AdrPolicy

__all__ = [
    "GUARDRAIL_RULE_PREFIXES",
    "RULE_GUARD_LOGS",
    "RULE_SECRET",
    "RULE_UNINSPECTED",
    "Finding",
    "adr_findings",
    "adr_fix",
    "commit_findings",
]

GUARDRAIL_RULE_PREFIXES = ("commit:", "adr:")
RULE_GUARD_LOGS = "commit:guard-logs"
RULE_SECRET = "commit:secret"  # noqa: S105 - a rule id, not a password
RULE_UNINSPECTED = "commit:uninspected"
_SHOWN = 3  # paths named in a message; the rest are counted


@dataclass(frozen=True, slots=True)
class Finding:
    """One guardrail that refuses one simple command."""

    command: int
    rule: str
    why: str


def commit_findings(
    facts: CommitFacts, rules: CommitRules, intent: CommitIntent | None
) -> list[Finding]:
    """What refuses one commit: never-paths, guard logs, secrets, a problem."""
    index = facts.command
    what = _what(facts.kind, intent)
    verb = "hold" if facts.kind == "history" else "would commit"
    if facts.problem is not None:
        why = f"guard cannot tell what this {what} would hold ({facts.problem})"
        return [Finding(index, RULE_UNINSPECTED, why)]
    findings = []
    if facts.owned:
        why = (
            f"{what} {verb} the guard's own logs: {_paths(facts.owned)}; "
            f"fix: {_unstage(facts.owned, facts.kind, intent)}; list the guard's "
            f"log directories (Sessions, NetOps, Approvals) in .gitignore"
        )
        findings.append(Finding(index, RULE_GUARD_LOGS, why))
    owned = set(facts.owned)
    for rule in rules.never:
        refused = [p for p in facts.paths if p not in owned and rule.refuses(p)]
        if refused:
            about = rule.description or f"rule {rule.id}"
            fix = _unstage(refused, facts.kind, intent)
            if rule.fix:
                fix += f"; {rule.fix}"
            why = f"{what} {verb} {_paths(refused)} ({about}); fix: {fix}"
            findings.append(Finding(index, f"commit:{rule.id}", why))
    secrets = [
        found
        for found in facts.secrets
        if found.path == MESSAGE_PATH or rules.scanned(found.path)
    ]
    if secrets and rules.scan_secrets:
        places = ", ".join(
            f"{s.detector} in {s.path} line {s.line}" for s in secrets[:_SHOWN]
        )
        more = f" and {len(secrets) - _SHOWN} more" if len(secrets) > _SHOWN else ""
        why = (
            f"{what} {verb} a secret: {places}{more}; fix: remove it (and "
            f"rotate it if it is real), stage the file again, then commit"
        )
        findings.append(Finding(index, RULE_SECRET, why))
    return findings


def adr_fix(policy: AdrPolicy, task_id: str | None) -> str:
    """The ADR stop's instruction (the words agents act on)."""
    folder = f"{policy.folder}/"
    if task_id:
        return f"open an ADR under {folder} naming {task_id}, then retry"
    return (
        f"open an ADR under {folder} naming the session's task id, then retry "
        f"(this command has no task: start the session with --task)"
    )


def adr_findings(
    needs: Sequence[AdrNeed], facts: AdrFacts, policy: AdrPolicy
) -> list[Finding]:
    """The needs that apply and are not met by an ADR naming the task."""
    if facts.record is not None:
        return []
    held = {(c.command, c.kind): c.evidence for c in facts.held}
    findings = []
    for need in needs:
        if need.conditional and (need.command, need.kind) not in held:
            continue
        why = f"{need.why}: {adr_fix(policy, facts.task_id)}"
        findings.append(Finding(need.command, f"adr:{need.kind}", why))
    return findings


def _what(kind: str, intent: CommitIntent | None) -> str:
    spelled = "the new commits" if kind == "history" else f"git {kind}"
    if intent is not None and intent.alias:
        spelled += f" (alias {intent.alias})"
    return spelled


def _paths(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _unstage(paths: Sequence[str], kind: str, intent: CommitIntent | None) -> str:
    """How to leave ``paths`` out, for this way of committing."""
    quoted = " ".join(shlex.quote(path) for path in paths[:_SHOWN])
    if kind == "history":
        return (
            f"make the commits again without {quoted} (git reset --soft to before "
            f"them, git restore --staged {quoted}, commit)"
        )
    if kind == "merge":
        return f"git restore --staged {quoted} before the merge commit is made"
    if kind != "commit":
        return (
            f"remove {quoted} from the commits this git {kind} would copy "
            f"(git rm --cached {quoted} on their branch)"
        )
    if intent is not None and intent.flags & {"a", "p"}:
        return (
            f"commit without -a: stage only what belongs with git add, "
            f"and keep {quoted} unstaged"
        )
    return f"git restore --staged {quoted} (or leave it out of git add)"
