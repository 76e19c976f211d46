"""Check every rule's ``match`` / ``not_match`` examples against the classifier.

An example is a command line in the rule's ``example_shell``. ``match``
examples must produce a simple command the rule matches; ``not_match``
examples must produce none. A failing example is a PolicyError naming the
rule, so a policy can never silently stop meaning what its author wrote.
"""

from __future__ import annotations

from dataclasses import replace

from statetrace_guard.batch import argv_for
from statetrace_guard.classify import ClassifyContext, classify_argv
from statetrace_guard.decision import matching_rules
from statetrace_guard.errors import PolicyError
from statetrace_guard.policy import CompiledPolicy

__all__ = ["check_examples"]

# Examples are judged in a neutral workspace; nothing on disk is consulted.
_EXAMPLE_CONTEXT = ClassifyContext(cwd="/workspace", workspace="/workspace")


def check_examples(policy: CompiledPolicy) -> int:
    """Check every example of every rule; return how many were checked.

    Raises:
        PolicyError: an example does not behave as its rule says.
    """
    checked = 0
    for index, rule in enumerate(policy.model.rules):
        for kind, examples in (("match", rule.match), ("not_match", rule.not_match)):
            for position, example in enumerate(examples):
                if _matches(policy, rule.id, example, rule.example_shell) != (
                    kind == "match"
                ):
                    verb = "does not match" if kind == "match" else "matches"
                    raise PolicyError(
                        f"example {example!r} {verb} rule {rule.id!r}",
                        file=policy.source,
                        field=f"rules.{index}.{kind}.{position}",
                    )
                checked += 1
    return checked


def _matches(policy: CompiledPolicy, rule_id: str, example: str, shell: str) -> bool:
    from statetrace_guard.classify.registry import knowledge_for  # noqa: PLC0415

    knowledge = knowledge_for(policy.programs, policy.trusted_dirs)
    ctx = replace(_EXAMPLE_CONTEXT, knowledge=knowledge)
    classification = classify_argv(argv_for(example, shell), ctx)
    return any(
        rule.id == rule_id
        for command in classification.commands
        for rule in matching_rules(command, policy)
    )
