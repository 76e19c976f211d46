"""Gather the facts the guardrails need, from the repository and the disk.

The only impure part of the guardrails: :class:`Inspector` answers what a
commit would contain (:mod:`.contents`, :mod:`.scan`), which alias a git
subcommand is, whether a store or project a command names is new, and which
ADR names the task. ``guard run``, ``check`` and ``explain`` pass one to
:func:`statetrace_guard.evaluate.evaluate`; ``replay`` passes the recorded
facts instead. Any failure to answer becomes a ``problem`` (the guard then
refuses the commit): fail closed.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from statetrace_guard.guardrails.adr import AdrNeed
from statetrace_guard.guardrails.commits import AddIntent, CommitIntent
from statetrace_guard.guardrails.contents import (
    Content,
    Repository,
    commit_contents,
    open_repository,
)
from statetrace_guard.guardrails.facts import (
    MAX_RECORDED_PATHS,
    AdrFacts,
    CommitFacts,
    Condition,
)
from statetrace_guard.guardrails.gitcmd import Git, GitFailed
from statetrace_guard.guardrails.rules import CommitRules
from statetrace_guard.guardrails.scan import scan_contents, scan_messages
from statetrace_guard.paths import GUARD_LOG_SUBDIRS

if TYPE_CHECKING:
    from statetrace_guard.guardrails.config import AdrPolicy

__all__ = ["Inspector", "examine", "find_adr", "guard_log_prefixes"]

_ADR_FILES = 2000  # files of the ADR folder looked at
_ADR_BYTES = 256 * 1024  # of each, read for the task id
_PROJECT_SUFFIXES = (".csproj", ".vbproj", ".fsproj", ".vcxproj", ".proj", ".sln")


@dataclass(frozen=True, slots=True)
class Inspector:
    """Looks at the repository and the disk for one judgement.

    Attributes:
        workspace: the workspace root (absolute).
        cwd: the command's working directory (absolute).
        log_dir: the guard's log directory (its own logs are never committed).
        env: the environment the command would run with (git sees the same).
        task_id: the session's task id, for the ADR stop.
    """

    workspace: str
    cwd: str
    log_dir: str
    env: Mapping[str, str]
    task_id: str | None = None

    def alias(self, directory: str | None, name: str) -> str | None:
        """The definition of ``alias.NAME`` where git would run, if any."""
        git = Git(self._where(directory), self.env)
        try:
            out = git("config", "--get", f"alias.{name}")
        except GitFailed:
            return None
        return out.decode("utf-8", "surrogateescape").strip() or None

    def commit(
        self,
        index: int,
        intent: CommitIntent,
        rules: CommitRules,
        where: str | None = None,
        adds: Sequence[AddIntent] = (),
    ) -> CommitFacts:
        """What the commits of ``intent`` would hold, checked content included.

        Args:
            index: the simple command's index.
            intent: the parsed command.
            rules: the policy's ``[commit]`` rules (what to scan).
            where: the directory git runs in when the classifier followed a
                ``cd`` (absolute), else None for the command's ``-C``/cwd.
            adds: ``git add`` commands before it in the same command line.
        """
        directory = where or self._where(intent.directory)
        if intent.problem is not None:
            return CommitFacts(index, intent.kind, directory, problem=intent.problem)
        try:
            repo = open_repository(Git(directory, self.env))
            if repo is None:
                return CommitFacts(index, intent.kind, directory)
            return self._inspect(index, intent, rules, repo, adds)
        except GitFailed as failed:
            why = f"guard could not read what it would commit: {failed.message}"
            return CommitFacts(index, intent.kind, directory, problem=why)

    def _inspect(
        self,
        index: int,
        intent: CommitIntent,
        rules: CommitRules,
        repo: Repository,
        adds: Sequence[AddIntent],
    ) -> CommitFacts:
        contents = commit_contents(repo, intent, adds)
        facts = examine(repo, contents, rules, self.log_dir, intent.messages)
        return replace(facts, command=index, kind=intent.kind)

    def adr(self, needs: Sequence[AdrNeed], policy: AdrPolicy) -> AdrFacts:
        """Which conditional needs hold, and the ADR naming the task."""
        held = tuple(
            condition
            for need in needs
            if need.conditional
            for condition in self._condition(need)
        )
        applies = held or any(not need.conditional for need in needs)
        record = None
        if applies and self.task_id:
            record = find_adr(self.workspace, policy, self.task_id)
        return AdrFacts(self.task_id, record, held)

    def _condition(self, need: AdrNeed) -> list[Condition]:
        for path in need.if_missing:
            full = os.path.realpath(os.path.join(self.cwd, path.replace("\\", "/")))
            inside = full == self.workspace or full.startswith(self.workspace + "/")
            if inside and not os.path.lexists(full):
                return [Condition(need.command, need.kind, path)]
        projects = list(need.if_untracked)
        if need.projects_in is not None:
            projects.extend(_projects_in(os.path.join(self.cwd, need.projects_in)))
        untracked = self._untracked(projects)
        return [Condition(need.command, need.kind, untracked[0])] if untracked else []

    def _untracked(self, paths: list[str]) -> list[str]:
        """The paths git does not track (all of them when git cannot tell)."""
        existing = [p for p in paths if os.path.exists(os.path.join(self.cwd, p))]
        if not existing:
            return []
        try:
            out = Git(self.cwd, self.env)("ls-files", "-z", "--", *existing)
        except GitFailed:
            return existing
        tracked = {self._absolute(name) for name in _names(out)}
        return [p for p in existing if self._absolute(p) not in tracked]

    def _absolute(self, path: str) -> str:
        full = os.path.realpath(os.path.join(self.cwd, path.replace("\\", "/")))
        return os.path.normcase(full)

    def _where(self, directory: str | None) -> str:
        if directory is None:
            return self.cwd
        return os.path.realpath(os.path.join(self.cwd, directory))


def examine(
    repo: Repository,
    contents: Sequence[Content],
    rules: CommitRules,
    log_dir: str,
    messages: Sequence[str] = (),
) -> CommitFacts:
    """The facts about contents a commit would hold (the hook's check too).

    Paths already refused by a never-rule or lying in the guard's logs are not
    read: they are refused whatever they hold.

    Raises:
        GitFailed: a blob could not be read.
    """
    paths = sorted({item.path for item in contents})
    owned = _owned(paths, guard_log_prefixes(log_dir, repo.top))
    skip = set(owned) | {p for p in paths if any(r.refuses(p) for r in rules.never)}
    secrets, unscanned = scan_contents(repo, _unrefused(contents, skip), rules)
    if rules.scan_secrets:
        secrets.extend(scan_messages(messages))
    return CommitFacts(
        command=0,
        kind="commit",
        repo=repo.top,
        paths=tuple(paths[:MAX_RECORDED_PATHS]),
        more_paths=max(0, len(paths) - MAX_RECORDED_PATHS),
        owned=tuple(owned),
        secrets=tuple(secrets),
        unscanned=tuple(unscanned),
    )


def _unrefused(contents: Sequence[Content], skip: set[str]) -> list[Content]:
    return [item for item in contents if item.path not in skip]


def guard_log_prefixes(log_dir: str, top: str) -> tuple[str, ...]:
    """The guard's log subdirectories relative to ``top`` (``Logs/Sessions/``)."""
    prefixes = []
    for sub in GUARD_LOG_SUBDIRS:
        full = os.path.realpath(os.path.join(log_dir, sub))
        relative = os.path.relpath(full, os.path.realpath(top))
        if not relative.startswith(".."):
            prefixes.append(relative.replace(os.sep, "/").lower() + "/")
    return tuple(prefixes)


def _owned(paths: Sequence[str], prefixes: tuple[str, ...]) -> list[str]:
    return [path for path in paths if path.lower().startswith(prefixes)]


def _projects_in(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [
        os.path.join(directory, name)
        for name in names
        if name.lower().endswith(_PROJECT_SUFFIXES)
    ]


def _names(out: bytes) -> list[str]:
    return [
        name.decode("utf-8", "surrogateescape") for name in out.split(b"\0") if name
    ]


def find_adr(workspace: str, policy: AdrPolicy, task_id: str) -> str | None:
    """The first ADR file that names ``task_id`` (file name or text), if any."""
    folder = os.path.join(workspace, policy.folder)
    try:
        names = sorted(os.listdir(folder))[:_ADR_FILES]
    except OSError:
        return None
    mention = re.compile(rf"(?<![\w-]){re.escape(task_id)}(?!\w)", re.IGNORECASE)
    for name in names:
        if not fnmatch.fnmatch(name.lower(), policy.pattern.lower()):
            continue
        path = os.path.join(folder, name)
        if mention.search(name) or _mentions(path, mention):
            return f"{policy.folder}/{name}"
    return None


def _mentions(path: str, mention: re.Pattern[str]) -> bool:
    try:
        with open(path, "rb") as handle:
            text = handle.read(_ADR_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    return mention.search(text) is not None
