"""The ``[commit]`` rules compiled: plain values, no validation library.

:mod:`.config` validates the policy's section (pydantic) and compiles it with
:func:`compile_commit_rules`; the git hook, which runs on every commit and
must start quickly, rebuilds the same values from a cache written by a
validated load (:func:`rules_to_json`, :func:`rules_from_json`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statetrace_guard.guardrails.globs import compile_globs

__all__ = [
    "CommitRules",
    "CompiledNever",
    "compile_commit_rules",
    "compile_never",
    "rules_from_json",
    "rules_to_json",
]


@dataclass(frozen=True, slots=True)
class CompiledNever:
    """One ``[[commit.never]]`` entry ready for matching."""

    id: str
    description: str
    fix: str
    pattern: re.Pattern[str]
    allow: re.Pattern[str] | None
    paths: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def refuses(self, path: str) -> bool:
        """True when ``path`` (repository-relative, ``/``-separated) is refused."""
        if not self.pattern.fullmatch(path):
            return False
        return self.allow is None or not self.allow.fullmatch(path)


@dataclass(frozen=True, slots=True)
class CommitRules:
    """``[commit]`` compiled."""

    never: tuple[CompiledNever, ...]
    scan_secrets: bool
    scan_exclude: re.Pattern[str] | None
    max_file_bytes: int
    excluded: tuple[str, ...] = ()

    def scanned(self, path: str) -> bool:
        """True when the secret scan reads ``path``."""
        if not self.scan_secrets:
            return False
        return self.scan_exclude is None or not self.scan_exclude.fullmatch(path)


def compile_never(
    rule_id: str,
    paths: Sequence[str],
    allow: Sequence[str] = (),
    description: str = "",
    fix: str = "",
) -> CompiledNever:
    """One never-rule from its globs.

    Raises:
        ValueError: no paths, or a glob is empty.
    """
    pattern = compile_globs(paths)
    if pattern is None:
        msg = f"commit rule {rule_id!r} names no paths"
        raise ValueError(msg)
    return CompiledNever(
        id=rule_id,
        description=description,
        fix=fix,
        pattern=pattern,
        allow=compile_globs(allow),
        paths=tuple(paths),
        allowed=tuple(allow),
    )


def compile_commit_rules(
    never: tuple[CompiledNever, ...],
    *,
    scan_secrets: bool,
    scan_exclude: Sequence[str],
    max_file_bytes: int,
) -> CommitRules:
    """The whole ``[commit]`` section from its parts."""
    return CommitRules(
        never=never,
        scan_secrets=scan_secrets,
        scan_exclude=compile_globs(scan_exclude),
        max_file_bytes=max_file_bytes,
        excluded=tuple(scan_exclude),
    )


def rules_to_json(rules: CommitRules) -> dict[str, Any]:
    """The rules as JSON (for the hook's cache)."""
    return {
        "never": [
            {
                "id": rule.id,
                "paths": list(rule.paths),
                "allow": list(rule.allowed),
                "description": rule.description,
                "fix": rule.fix,
            }
            for rule in rules.never
        ],
        "scan_secrets": rules.scan_secrets,
        "scan_exclude": list(rules.excluded),
        "max_file_bytes": rules.max_file_bytes,
    }


def rules_from_json(data: Mapping[str, Any]) -> CommitRules:
    """Rebuild rules written by :func:`rules_to_json`.

    Raises:
        KeyError, TypeError, ValueError: the data is not such a document.
    """
    never = tuple(
        compile_never(
            str(item["id"]),
            [str(p) for p in item["paths"]],
            [str(p) for p in item["allow"]],
            str(item["description"]),
            str(item["fix"]),
        )
        for item in data["never"]
    )
    return compile_commit_rules(
        never,
        scan_secrets=bool(data["scan_secrets"]),
        scan_exclude=[str(p) for p in data["scan_exclude"]],
        max_file_bytes=int(data["max_file_bytes"]),
    )
