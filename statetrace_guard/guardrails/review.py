"""The guardrails step of a judgement: find, gather facts, tighten.

:func:`review` runs after the policy decided. It finds the simple commands
that make commits (:mod:`.commits`) or need an ADR (:mod:`.adr`); when the
verdict still allows the command it gets the facts from the caller's source
and tightens the verdict with what :mod:`.judge` finds. The source is

* an :class:`~statetrace_guard.guardrails.inspect.Inspector` (``guard run``,
  ``check``, ``explain``, agent hooks): the repository is asked now;
* recorded :class:`~statetrace_guard.guardrails.facts.GuardrailFacts`
  (``guard replay``): the facts the guard saw then, judged under today's
  policy;
* None (``check --batch``, a replay of a record without facts): nothing is
  looked at, and the verdict says which check was skipped (its decision is
  the policy's alone).

A command line without commits or ADR-gated programs costs one pass over
its simple commands and no process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.decision import DecisionContext, Verdict
from statetrace_guard.guardrails.adr import AdrNeed, adr_needs
from statetrace_guard.guardrails.commits import (
    GIT_LOCATION_VARIABLES,
    AddIntent,
    AliasLookup,
    CommitIntent,
    add_intent,
    commit_intent,
)
from statetrace_guard.guardrails.config import Guardrails
from statetrace_guard.guardrails.facts import GuardrailFacts
from statetrace_guard.guardrails.findings import (
    Finding,
    adr_findings,
    commit_findings,
)
from statetrace_guard.guardrails.inspect import Inspector
from statetrace_guard.guardrails.judge import apply_findings, note_unchecked
from statetrace_guard.policy import CompiledPolicy

__all__ = ["FactsSource", "Reviewed", "review"]

FactsSource = Inspector | GuardrailFacts | None


@dataclass(frozen=True, slots=True)
class Reviewed:
    """The verdict after the guardrails, and the facts they were judged on."""

    verdict: Verdict
    facts: GuardrailFacts | None = None


@dataclass(frozen=True, slots=True)
class _Commit:
    index: int
    intent: CommitIntent
    adds: tuple[AddIntent, ...]
    where: str | None


def review(
    argv: Sequence[str],
    classification: Classification,
    verdict: Verdict,
    policy: CompiledPolicy,
    ctx: DecisionContext,
    source: FactsSource,
    unchecked: str = "not looked at",
) -> Reviewed:
    """Apply the commit guard and the ADR stop to a verdict.

    Args:
        argv: the command as given.
        classification: the classified command.
        verdict: the policy's verdict on it.
        policy: the policy (its ``[commit]`` and ``[adr]`` sections).
        ctx: where it is judged (cwd, workspace, environment).
        source: where the facts come from (see the module docstring).
        unchecked: why nothing was looked at, when ``source`` is None.

    Returns:
        The tightened verdict and the facts used (None when none were).
    """
    rails = policy.guardrails
    aliases = source.alias if isinstance(source, Inspector) else None
    commits = list(_commits(classification.commands, ctx, aliases))
    needs = adr_needs(
        argv, classification, frozenset(rails.adr.applies), ctx.cwd, ctx.workspace
    )
    recorded = source if isinstance(source, GuardrailFacts) else None
    if not verdict.allowed or not (commits or needs or (recorded and recorded.commits)):
        return Reviewed(verdict)
    if isinstance(source, Inspector):
        facts = _gather(source, commits, needs, rails)
    elif recorded is not None:
        facts = recorded
    else:
        notes = _skipped(commits, needs, unchecked)
        return Reviewed(note_unchecked(verdict, notes, ctx.env))
    findings = _findings(commits, needs, facts, rails)
    notes = _unrecorded(commits, needs, facts) if recorded is not None else {}
    tightened = apply_findings(verdict, findings, ctx.env, classification.parse_errors)
    return Reviewed(note_unchecked(tightened, notes, ctx.env), facts)


def _commits(
    commands: Sequence[SimpleCommand], ctx: DecisionContext, aliases: AliasLookup | None
) -> Iterator[_Commit]:
    """The commit-making commands, each with the ``git add`` runs before it."""
    moved = next(
        (
            name.upper()
            for command in commands
            for name in command.env_sets
            if name.upper() in GIT_LOCATION_VARIABLES
        ),
        None,
    )
    adds: list[AddIntent] = []
    for index, command in enumerate(commands):
        if not command.name.startswith("git"):
            continue
        add = add_intent(command.argv)
        if add is not None:
            adds.append(add)
            continue
        intent = commit_intent(command.argv, aliases)
        if intent is None:
            continue
        if moved is not None and intent.problem is None:
            why = f"the command sets {moved}, so git would not commit what guard sees"
            intent = replace(intent, problem=why)
        yield _Commit(index, intent, tuple(adds), _where(command, ctx))


def _where(command: SimpleCommand, ctx: DecisionContext) -> str | None:
    """The directory git runs in, as the classifier followed ``cd`` and ``-C``."""
    if not command.writes or not ctx.cwd:
        return None
    return os.path.realpath(os.path.join(ctx.cwd, command.writes[0]))


def _gather(
    inspector: Inspector,
    commits: Sequence[_Commit],
    needs: Sequence[AdrNeed],
    rails: Guardrails,
) -> GuardrailFacts:
    return GuardrailFacts(
        commits=tuple(
            inspector.commit(
                item.index, item.intent, rails.commit, item.where, item.adds
            )
            for item in commits
        ),
        adr=inspector.adr(needs, rails.adr) if needs else None,
    )


def _findings(
    commits: Sequence[_Commit],
    needs: Sequence[AdrNeed],
    facts: GuardrailFacts,
    rails: Guardrails,
) -> list[Finding]:
    intents = {item.index: item.intent for item in commits}
    found: list[Finding] = []
    for item in facts.commits:
        found.extend(commit_findings(item, rails.commit, intents.get(item.command)))
    if facts.adr is not None:
        found.extend(adr_findings(needs, facts.adr, rails.adr))
    return found


def _skipped(
    commits: Sequence[_Commit], needs: Sequence[AdrNeed], why: str
) -> dict[int, str]:
    notes = {item.index: f"commit contents not inspected ({why})" for item in commits}
    for need in needs:
        notes.setdefault(need.command, f"ADR stop not checked ({why})")
    return notes


def _unrecorded(
    commits: Sequence[_Commit], needs: Sequence[AdrNeed], facts: GuardrailFacts
) -> dict[int, str]:
    """Replay: the checks the record holds no facts for."""
    seen = {item.command for item in facts.commits}
    why = "not recorded: the record predates the check"
    notes = {
        item.index: f"commit contents not inspected ({why})"
        for item in commits
        if item.index not in seen
    }
    if needs and facts.adr is None:
        for need in needs:
            notes.setdefault(need.command, f"ADR stop not checked ({why})")
    return notes
