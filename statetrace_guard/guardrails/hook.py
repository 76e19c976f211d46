"""The git hooks' entry point: the commit guard for commits no classifier sees.

``guard install git-hooks`` writes small shell hooks into the repository's
hooks directory that run::

    PYTHON -I -m statetrace_guard.guardrails.hook pre-commit
    PYTHON -I -m statetrace_guard.guardrails.hook pre-merge-commit
    PYTHON -I -m statetrace_guard.guardrails.hook reference-transaction prepared

``pre-commit`` and ``pre-merge-commit`` check the index against HEAD (the
commit about to be made); ``reference-transaction`` checks every commit a
branch is about to point to that no reference reaches yet, which covers what
``--no-verify``, ``commit-tree`` + ``update-ref``, rebases, cherry-picks and
``am`` make. The rules are the workspace policy's (``guard.toml`` at the top
level, else the built-in one), the same check as at decision time
(:func:`~statetrace_guard.guardrails.inspect.examine`,
:func:`~statetrace_guard.guardrails.judge.commit_findings`). Exit 0 lets git
go on; 1 refuses, with the reasons and the way out on stderr. Anything that
stops the check (an invalid policy, git failing) refuses too: fail closed.

It imports only what the check needs: it runs on every human commit too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from statetrace_guard.errors import GuardError
from statetrace_guard.guardrails.contents import (
    Content,
    Repository,
    new_commits,
    open_repository,
    staged_contents,
)
from statetrace_guard.guardrails.gitcmd import Git, GitFailed
from statetrace_guard.guardrails.inspect import examine
from statetrace_guard.guardrails.judge import Finding, commit_findings

__all__ = ["HOOK_NAMES", "main"]

HOOK_NAMES = ("pre-commit", "pre-merge-commit", "reference-transaction")
_ZERO = frozenset("0")
_WATCHED_REFS = ("refs/heads/", "HEAD")
_POLICY_FILE = "guard.toml"
_OUTRO = (
    "This is statetrace-guard's {hook} hook (installed by `guard install "
    "git-hooks`); it checks every commit in this repository, yours too, against "
    "the [commit] rules of {policy}. If the commit is right, change those rules; "
    "a person (never an agent) can skip the check for one commit with "
    "`git -c core.hooksPath=/dev/null commit ...` (--no-verify skips only the "
    "pre-commit check)."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one hook; return its exit status (0 lets git go on)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in HOOK_NAMES:
        sys.stderr.write(f"usage: hook {{{'|'.join(HOOK_NAMES)}}} [ARGS...]\n")
        return 2
    hook = args[0]
    if hook == "reference-transaction" and args[1:2] != ["prepared"]:
        return 0
    stdin = sys.stdin.buffer if hook == "reference-transaction" else None
    try:
        return _check(hook, stdin)
    except (GitFailed, GuardError) as error:
        text = error.message if isinstance(error, GitFailed) else str(error)
        sys.stderr.write(
            f"guard: commit refused: statetrace-guard's {hook} hook could not "
            f"check it ({text})\n"
        )
        return 1


def _check(hook: str, stdin: BinaryIO | None) -> int:
    repo = open_repository(Git(os.getcwd(), os.environ))
    if repo is None:
        return 0
    if stdin is not None:
        count, contents = _transaction(repo, stdin)
        kind, what = "history", f"{count} new commit(s)"
        if not contents:
            return 0
    else:
        contents = staged_contents(repo)
        kind = "merge" if hook == "pre-merge-commit" else "commit"
        what = "this commit"
    from statetrace_guard.policy import load_policy  # noqa: PLC0415 - after the cheap exits

    candidate = Path(repo.top) / _POLICY_FILE
    policy_file = candidate if candidate.is_file() else None
    rules = load_policy(policy_file).guardrails.commit
    facts = examine(repo, contents, rules, os.path.join(repo.top, "Logs"))
    findings = commit_findings(replace(facts, kind=kind), rules, None)
    if not findings:
        return 0
    _report(hook, what, findings, policy_file)
    return 1


def _transaction(repo: Repository, stdin: BinaryIO) -> tuple[int, list[Content]]:
    data = stdin.read()
    tips = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) != 3:  # noqa: PLR2004 - old new ref
            continue
        _, new, ref = parts
        if set(new) <= _ZERO or not ref.startswith(_WATCHED_REFS):
            continue
        tips.append(new)
    if not tips:
        return 0, []
    return new_commits(repo, tips)


def _report(
    hook: str, what: str, findings: Sequence[Finding], policy_file: Path | None
) -> None:
    lines = [f"guard: commit refused: {what} would break the commit rules:"]
    lines.extend(f"  - {finding.why} (rule {finding.rule})" for finding in findings)
    policy = str(policy_file) if policy_file is not None else "the built-in policy"
    lines.append(_OUTRO.format(hook=hook, policy=policy))
    sys.stderr.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
