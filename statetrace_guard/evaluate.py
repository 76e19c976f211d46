"""Classify then decide: the one judgement every subcommand shares.

``run``, ``check``, ``explain`` and ``replay`` all call :func:`evaluate`, so
they can never disagree about a command. After the policy's decision the
guardrails (the commit guard and the ADR stop, :mod:`.guardrails.review`)
may tighten it; they need facts from the repository, which only the caller
may look at: it passes an inspector (run, check, explain, hooks), recorded
facts (replay), or nothing (batch), and the verdict says what was skipped.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from statetrace_guard.classify.model import Classification, ClassifyContext
from statetrace_guard.decision import DecisionContext, Enforcement, Verdict, decide
from statetrace_guard.levels import Level
from statetrace_guard.paths import GUARD_LOG_SUBDIRS, guard_owned_paths, real_child
from statetrace_guard.paths import temp_dirs as temp_dirs_of_machine
from statetrace_guard.policy import CompiledPolicy
from statetrace_guard.workspaces import known_log_dirs

if TYPE_CHECKING:
    from statetrace_guard.guardrails.facts import GuardrailFacts
    from statetrace_guard.guardrails.review import FactsSource

__all__ = ["POLICY_FILE_NAME", "Judgement", "Place", "evaluate", "make_place"]

POLICY_FILE_NAME = "guard.toml"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a command is judged: resolved once per guard invocation."""

    classify: ClassifyContext
    decide: DecisionContext


@dataclass(frozen=True, slots=True)
class Judgement:
    """A classification, the verdict on it, and the guardrails' facts if any."""

    classification: Classification
    verdict: Verdict
    guardrails: GuardrailFacts | None = None


def make_place(
    cwd: Path,
    workspace: Path,
    log_dir: Path,
    policy_file: Path | None,
    env: Mapping[str, str],
    enforcement: Enforcement = "none",
) -> Place:
    """Resolve the paths a judgement needs: workspace, protected, temp.

    ``enforcement`` says whether the kernel enforces the level's envelope
    where the command runs ("none" unless the caller knows it does).
    """
    cwd_text = os.path.realpath(cwd)
    workspace_text = os.path.realpath(workspace)
    # guard.toml at the workspace root is protected even while absent: an
    # agent that could create it would choose the next command's policy.
    # The log subdirectories of every workspace guard has written are too.
    owned = (
        *(str(path) for path in guard_owned_paths(log_dir, policy_file)),
        real_child(workspace_text, POLICY_FILE_NAME),
        *(
            real_child(real_known, sub)
            for real_known in map(os.path.realpath, known_log_dirs())
            for sub in GUARD_LOG_SUBDIRS
        ),
    )
    protected = tuple(dict.fromkeys(owned))  # each resolved already
    temp_dirs = temp_dirs_of_machine()
    return Place(
        classify=ClassifyContext(cwd=cwd_text, workspace=workspace_text),
        decide=DecisionContext(
            workspace=workspace_text,
            cwd=cwd_text,
            protected=protected,
            temp_dirs=temp_dirs,
            env=dict(env),
            enforcement=enforcement,
        ),
    )


def evaluate(
    argv: Sequence[str],
    level: Level,
    policy: CompiledPolicy,
    place: Place,
    guardrails: FactsSource = None,
    unchecked: str = "guard check --batch does not look at the repository",
) -> Judgement:
    """Classify ``argv`` and decide on it at ``level``.

    Args:
        argv: the command.
        level: the session's level.
        policy: the compiled policy.
        place: where it is judged.
        guardrails: where the commit guard and the ADR stop get their facts
            (an inspector, recorded facts, or None to skip them).
        unchecked: the reason a skipped check gives.
    """
    from statetrace_guard.classify.argv import (  # noqa: PLC0415 - parsers load on first use
        classify_argv,
    )
    from statetrace_guard.classify.registry import knowledge_for  # noqa: PLC0415
    from statetrace_guard.guardrails.review import (  # noqa: PLC0415 - loaded with the parsers
        review,
    )

    knowledge = knowledge_for(policy.programs, policy.trusted_dirs)
    where = place.classify
    ctx = ClassifyContext(where.cwd, where.workspace, where.depth, knowledge)

    # NOTE(gc): the classifiers bound their work by CPU time and fail closed
    # past it; a collector pause (a long-lived helper has a large heap) must
    # not be charged to one command and turn it dynamic. Collect afterwards.
    collecting = gc.isenabled()
    gc.disable()
    try:
        classification = classify_argv(argv, ctx)
    finally:
        if collecting:
            gc.enable()
    verdict = decide(classification, policy, level, place.decide)
    reviewed = review(
        argv, classification, verdict, policy, place.decide, guardrails, unchecked
    )
    return Judgement(classification, reviewed.verdict, reviewed.facts)
