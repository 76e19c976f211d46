"""What a session committed and what the guardrails refused, for its report.

``guard session end`` lists under PATCH SUMMARY:

* the commits made during the session: every commit HEAD's reflog moved to
  since the session started (commits, amends, merges, cherry-picks, rebased
  picks; the reflog's times are git's own clock, not the commit dates a
  program may set), plus any commit between the start's base and HEAD the
  reflog does not show; each with its hash, subject and files, and the
  ``[commit]`` rules its files break (a commit made where no check ran, such
  as one with the hooks skipped, shows up here);
* the commands the guardrails refused (``command.blocked`` records whose
  rule is ``commit:...`` or ``adr:...``), with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from statetrace_guard.audit.reasons import deciding_text
from statetrace_guard.guardrails.findings import GUARDRAIL_RULE_PREFIXES
from statetrace_guard.guardrails.rules import CommitRules

__all__ = [
    "GuardrailBlock",
    "SessionCommit",
    "guardrail_blocks",
    "session_commits",
]

_GIT_TIMEOUT = 30
_MAX_COMMITS = 200
_COMMIT_ACTIONS = ("commit", "merge", "cherry-pick", "revert", "pull", "am")
_REBASE_PICKS = tuple(
    f"rebase{mode} ({step})"
    for mode in ("", " -i")
    for step in ("pick", "reword", "squash", "fixup", "edit")
)


@dataclass(frozen=True, slots=True)
class SessionCommit:
    """One commit made in the session."""

    sha: str
    subject: str
    files: tuple[str, ...]
    broken: tuple[str, ...] = ()  # the [commit] rules its files break


@dataclass(frozen=True, slots=True)
class GuardrailBlock:
    """One command a guardrail refused."""

    ts: str
    command: tuple[str, ...]
    reason: str


def session_commits(
    workspace: Path, base: str | None, started: str, rules: CommitRules
) -> tuple[SessionCommit, ...]:
    """The commits made in ``workspace`` since ``started`` (an RFC 3339 time).

    Args:
        workspace: the repository's working tree.
        base: the commit HEAD was at when the session started.
        started: when the session started.
        rules: the ``[commit]`` rules to check each commit's files against.

    Returns:
        Oldest first; empty when git cannot tell.
    """
    since = _epoch(started)
    shas = list(_reflog_commits(workspace, since))
    if base:
        shas.extend(reversed(_lines(_git(workspace, "rev-list", f"{base}..HEAD"))))
    shas = list(dict.fromkeys(shas))[:_MAX_COMMITS]
    if not shas:
        return ()
    return tuple(_describe(workspace, shas, rules))


def _reflog_commits(workspace: Path, since: float | None) -> Iterator[str]:
    out = _git(
        workspace, "reflog", "show", "--date=unix", "--format=%H%x1f%gd%x1f%gs", "HEAD"
    )
    entries = []
    for line in _lines(out):
        fields = line.split("\x1f")
        if len(fields) != 3:  # noqa: PLR2004 - hash, selector, subject
            continue
        sha, selector, action = fields
        when = _selector_time(selector)
        if since is not None and (when is None or when < since):
            continue
        if action.startswith(_COMMIT_ACTIONS) or action.startswith(_REBASE_PICKS):
            entries.append(sha)
    return reversed(entries)  # the reflog lists the newest first


def _describe(
    workspace: Path, shas: list[str], rules: CommitRules
) -> Iterator[SessionCommit]:
    out = _git(
        workspace,
        "log",
        "--no-walk=unsorted",
        "--format=%x1e%H%x1f%s",
        "--name-only",
        "--no-renames",
        "-m",
        "--first-parent",
        *shas,
        "--",
    )
    for chunk in out.split("\x1e"):
        head, _, rest = chunk.partition("\n")
        sha, sep, subject = head.partition("\x1f")
        if not sep:
            continue
        files = tuple(line for line in rest.splitlines() if line.strip())
        broken = tuple(
            rule.id for rule in rules.never if any(rule.refuses(f) for f in files)
        )
        yield SessionCommit(sha, subject, files, broken)


def guardrail_blocks(
    records: Iterable[dict[str, object]],
) -> tuple[GuardrailBlock, ...]:
    """The ``command.blocked`` records a guardrail decided, in log order."""
    found = []
    for record in records:
        if record.get("event") != "command.blocked":
            continue
        rules = record.get("rules")
        if not isinstance(rules, list) or not any(
            str(rule).startswith(GUARDRAIL_RULE_PREFIXES) for rule in rules
        ):
            continue
        argv = record.get("argv")
        command = tuple(str(word) for word in argv) if isinstance(argv, list) else ()
        reason = deciding_text(record) or ""
        found.append(GuardrailBlock(str(record.get("ts", "")), command, reason))
    return tuple(found)


def _selector_time(selector: str) -> float | None:
    """``HEAD@{1700000000}`` -> 1700000000."""
    inside = selector.partition("@{")[2].rstrip("}")
    try:
        return float(inside)
    except ValueError:
        return None


def _epoch(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def _git(workspace: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "--no-pager", "-c", "core.fsmonitor=false", *args],
            cwd=workspace,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""
