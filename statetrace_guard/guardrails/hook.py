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
The policy's ``[commit]`` rules come from a cache in guard's home, keyed by
the policy's bytes, the built-in policies and guard's version and written by
a validated load; only a new policy pays for loading the validation library.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import BinaryIO

from statetrace_guard._version import __version__
from statetrace_guard.errors import GuardError
from statetrace_guard.guardrails.contents import (
    Content,
    Repository,
    new_commits,
    open_repository,
    staged_contents,
)
from statetrace_guard.guardrails.findings import Finding, commit_findings
from statetrace_guard.guardrails.gitcmd import Git, GitFailed
from statetrace_guard.guardrails.inspect import examine
from statetrace_guard.guardrails.rules import (
    CommitRules,
    rules_from_json,
    rules_to_json,
)
from statetrace_guard.home import guard_home_text

__all__ = ["HOOK_NAMES", "commit_rules", "main"]

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
    candidate = os.path.join(repo.top, _POLICY_FILE)
    policy_file = candidate if os.path.isfile(candidate) else None
    rules = commit_rules(policy_file)
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


def commit_rules(policy_file: str | None) -> CommitRules:
    """The ``[commit]`` rules of a policy file (None: the built-in policy).

    Raises:
        GuardError: the policy is invalid (PolicyError) or unreadable.
    """
    raw = b"<built-in>"
    if policy_file is not None:
        try:
            with open(policy_file, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise GuardError(f"cannot read {policy_file}: {exc.strerror}") from exc
    cache = os.path.join(guard_home_text(), "cache", f"commit-rules-{_key(raw)}.json")
    try:
        with open(cache, "rb") as handle:
            return rules_from_json(json.loads(handle.read()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from pathlib import Path  # noqa: PLC0415 - only a new policy is loaded

    from statetrace_guard.policy import load_policy  # noqa: PLC0415

    rules = load_policy(None if policy_file is None else Path(policy_file))
    _store(cache, rules_to_json(rules.guardrails.commit))
    return rules.guardrails.commit


def _key(raw: bytes) -> str:
    """The policy's bytes, every built-in policy's and guard's version."""
    digest = hashlib.sha256(f"commit-rules 1 {__version__}\0".encode())
    digest.update(len(raw).to_bytes(8, "big") + raw)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in sorted(os.listdir(package)):
        if name.endswith(".toml"):
            with open(os.path.join(package, name), "rb") as handle:
                data = handle.read()
            digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:32]


def _store(path: str, data: dict[str, object]) -> None:
    """Write the cache atomically; a read-only home only costs the next load."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temp, path)
    except OSError:
        return


def _report(
    hook: str, what: str, findings: Sequence[Finding], policy_file: str | None
) -> None:
    lines = [f"guard: commit refused: {what} would break the commit rules:"]
    lines.extend(f"  - {finding.why} (rule {finding.rule})" for finding in findings)
    policy = policy_file if policy_file is not None else "the built-in policy"
    lines.append(_OUTRO.format(hook=hook, policy=policy))
    sys.stderr.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
