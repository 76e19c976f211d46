"""What the repository said when a command was judged: frozen data.

The guardrails need facts no argv holds (what a commit would contain, whether
a file exists, whether an ADR names the task). The caller that may look at the
repository gathers them (:mod:`.inspect`); the judgement itself stays a pure
function of the command, the policy and these facts. ``guard run`` records
them under ``extra.guardrails`` so ``guard replay`` can judge the same facts
under another policy without the repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_RECORDED_PATHS",
    "AdrFacts",
    "CommitFacts",
    "Condition",
    "GuardrailFacts",
    "SecretFinding",
    "facts_from_json",
    "facts_to_json",
]

MAX_RECORDED_PATHS = 1000  # a commit's paths kept in a record; the rest counted


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A secret in a file the commit would hold: where, and which detector."""

    path: str
    detector: str
    line: int


@dataclass(frozen=True, slots=True)
class CommitFacts:
    """What one commit-making simple command would put into the repository.

    Attributes:
        command: the index of the simple command in the classification.
        kind: ``commit``, ``merge``, ``rebase``... (see :mod:`.commits`).
        repo: the repository's top level, absolute.
        paths: repository-relative paths the commit would add or change
            (deletions are not listed: removing a file is never refused).
        more_paths: how many paths beyond :data:`MAX_RECORDED_PATHS`.
        owned: the listed paths that lie in the guard's own log directories.
        secrets: secrets found in their content (and in ``-m`` messages).
        unscanned: paths not scanned for secrets (over the size cap).
        problem: why the commit could not be inspected (the guard refuses
            it), else None.
    """

    command: int
    kind: str
    repo: str
    paths: tuple[str, ...] = ()
    more_paths: int = 0
    owned: tuple[str, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    unscanned: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A file-system condition of an ADR need that held, with its evidence.

    ``evidence`` names the file: the store that does not exist yet, or the
    project git does not track.
    """

    command: int
    kind: str
    evidence: str


@dataclass(frozen=True, slots=True)
class AdrFacts:
    """What the ADR stop needed to know.

    Attributes:
        task_id: the session's task id, None when the command has none.
        record: the ADR file (workspace-relative) naming the task, or None.
        held: the conditional needs whose condition held.
    """

    task_id: str | None
    record: str | None = None
    held: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class GuardrailFacts:
    """Everything gathered for one command."""

    commits: tuple[CommitFacts, ...] = ()
    adr: AdrFacts | None = None


def facts_to_json(facts: GuardrailFacts) -> dict[str, Any]:
    """The facts as a JSON object for ``extra.guardrails``."""
    out: dict[str, Any] = {
        "commits": [
            {
                "command": item.command,
                "kind": item.kind,
                "repo": item.repo,
                "paths": list(item.paths),
                "more_paths": item.more_paths,
                "owned": list(item.owned),
                "secrets": [
                    {"path": s.path, "detector": s.detector, "line": s.line}
                    for s in item.secrets
                ],
                "unscanned": list(item.unscanned),
                "problem": item.problem,
            }
            for item in facts.commits
        ]
    }
    if facts.adr is not None:
        out["adr"] = {
            "task_id": facts.adr.task_id,
            "record": facts.adr.record,
            "held": [
                {"command": c.command, "kind": c.kind, "evidence": c.evidence}
                for c in facts.adr.held
            ],
        }
    return out


def facts_from_json(data: object) -> GuardrailFacts | None:
    """Read facts back from a record; None when absent or malformed."""
    if not isinstance(data, Mapping):
        return None
    try:
        commits = tuple(_commit(item) for item in data.get("commits") or ())
        adr = data.get("adr")
        return GuardrailFacts(commits, None if adr is None else _adr(adr))
    except (KeyError, TypeError, ValueError):
        return None


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    return tuple(str(item) for item in value)


def _commit(item: Mapping[str, Any]) -> CommitFacts:
    problem = item.get("problem")
    return CommitFacts(
        command=int(item["command"]),
        kind=str(item["kind"]),
        repo=str(item["repo"]),
        paths=_strings(item.get("paths", [])),
        more_paths=int(item.get("more_paths", 0)),
        owned=_strings(item.get("owned", [])),
        secrets=tuple(
            SecretFinding(str(s["path"]), str(s["detector"]), int(s["line"]))
            for s in item.get("secrets", [])
        ),
        unscanned=_strings(item.get("unscanned", [])),
        problem=None if problem is None else str(problem),
    )


def _adr(item: Mapping[str, Any]) -> AdrFacts:
    task, record = item.get("task_id"), item.get("record")
    return AdrFacts(
        task_id=None if task is None else str(task),
        record=None if record is None else str(record),
        held=tuple(
            Condition(int(c["command"]), str(c["kind"]), str(c["evidence"]))
            for c in item.get("held", [])
        ),
    )
