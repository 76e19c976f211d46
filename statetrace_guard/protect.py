"""Protected paths: the one answer to "may a program below L2 write this?".

Two kinds of path are protected inside a workspace:

* **guard-owned** paths (log subdirectories, guard's home, the policy file):
  never writable, at any level; listed by :mod:`statetrace_guard.paths`;
* **protected data**: the policy's ``[protect]`` globs (workspace-relative),
  plus a fixed git minimum no policy can drop (git runs hooks and config
  later, outside any sandbox), read-only below L2 and writable from L2.

The classifier (``decision.py``) asks :func:`protection` about every path a
command writes (and, with :func:`holds_protected`, about the paths a program
that may write anything is given to work on: :mod:`statetrace_guard.operands`);
the kernel plan mounts what :func:`expand` finds; the
post-command sweep asks :func:`protection` about what appeared. One set of
patterns, one matcher, so the two can never disagree.

Globs are workspace-relative with ``/`` separators: ``*`` and ``?`` match
within one path segment, a ``**`` segment matches any number of segments
(none included), and a trailing ``/`` only says the entry is a directory.
Matching is case-insensitive (the StateTrace workspace is also checked out on
Windows). A path is protected when it or one of its ancestors matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PROTECT",
    "GIT_MINIMUM",
    "ProtectPatterns",
    "WalkBudget",
    "check_glob",
    "compile_protect",
    "contains_protected",
    "expand",
    "holds_protected",
    "protection",
]

# What git reads and runs later, outside any sandbox, from the workspace's
# own .git: protected below L2 whatever a policy's [protect] says. An empty
# hooks/, modules/ or worktrees/ means the same to git as none, so the guard
# creates them empty (read-only placeholders); commondir, config and
# config.worktree cannot have placeholders (git reads them) and are watched
# by the post-command sweep instead.
GIT_MINIMUM = (
    ".git/hooks",
    ".git/config",
    ".git/config.worktree",
    ".git/commondir",
    ".git/modules",
    ".git/worktrees",
)

# The [protect] list of a policy that names none: what makes a program run,
# or an agent's or editor's settings (an agent must not rewrite the hooks
# that guard it), at the workspace root.
DEFAULT_PROTECT = (
    ".git/hooks",
    ".git/config",
    ".gitmodules",
    ".vscode/tasks.json",
    ".vscode/settings.json",
    ".idea/",
    ".envrc",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".claude/settings*.json",
    ".codex/",
)

NESTED_GIT = "**/.git (below the workspace root)"

_WILD = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class _Glob:
    text: str
    segments: tuple[str, ...]
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class ProtectPatterns:
    """Compiled ``[protect]`` globs (with the git minimum).

    ``by_head`` files each glob under its literal first segment, so a path
    whose first segment none names (``src/...``, ``.venv/...``: nearly every
    path the sweep sees) is answered without a regular expression; ``wild``
    holds the globs whose first segment is itself a pattern.
    """

    globs: tuple[_Glob, ...]
    by_head: dict[str, tuple[_Glob, ...]]
    wild: tuple[_Glob, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        """The globs as written."""
        return tuple(glob.text for glob in self.globs)

    def candidates(self, head: str) -> tuple[_Glob, ...]:
        """The globs that can match a path starting with segment ``head``."""
        return self.by_head.get(head, ()) + self.wild


def check_glob(text: str) -> str:
    """Validate one ``[protect]`` glob and return it normalised.

    Raises:
        ValueError: absolute, empty, with ``..``, ``.`` or a backslash.
    """
    body = text.rstrip("/")
    if not body or body.startswith("/") or "\\" in body:
        raise ValueError(f"{text!r}: a workspace-relative path with / separators")
    parts = body.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise ValueError(f"{text!r}: no empty, '.' or '..' segments")
    return body


def compile_protect(globs: Iterable[str]) -> ProtectPatterns:
    """Compile ``globs`` and the git minimum (duplicates once)."""
    texts = dict.fromkeys(check_glob(text) for text in (*GIT_MINIMUM, *globs))
    compiled = tuple(_compile(text) for text in texts)
    by_head: dict[str, list[_Glob]] = {}
    wild = []
    for glob in compiled:
        if _WILD.search(glob.segments[0]):
            wild.append(glob)
        else:
            by_head.setdefault(glob.segments[0], []).append(glob)
    return ProtectPatterns(
        compiled, {head: tuple(found) for head, found in by_head.items()}, tuple(wild)
    )


def _compile(text: str) -> _Glob:
    segments = tuple(text.lower().split("/"))
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        body = "".join(_segment_char(char) for char in segment)
        parts.append(body if last else body + "/")
    return _Glob(text, segments, re.compile("".join(parts)))


def _segment_char(char: str) -> str:
    if char == "*":
        return "[^/]*"
    if char == "?":
        return "[^/]"
    return re.escape(char)


def protection(rel: str, patterns: ProtectPatterns) -> str | None:
    """The glob that protects workspace-relative ``rel`` (it or an ancestor), or None.

    A ``.git`` below the workspace root (a nested repository or a ``gitdir:``
    file) is protected too: git reads its config and runs its hooks.
    """
    lowered = rel.lower()
    if lowered in {"", "."}:
        return None
    parts = lowered.split("/")
    if ".git" in parts[1:]:
        return NESTED_GIT
    candidates = patterns.candidates(parts[0])
    if not candidates:
        return None
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for glob in candidates:
        if any(glob.pattern.fullmatch(prefix) for prefix in prefixes):
            return glob.text
    return None


def contains_protected(rel: str, patterns: ProtectPatterns) -> str | None:
    """The glob of a protected path that could lie strictly below ``rel``, or None.

    ``rm -rf Data`` removes ``Data/**/*.accdb``; ``mv .git g`` carries
    ``.git/hooks`` away. The workspace root itself is not asked (every
    protected path lies below it; the kernel keeps those).
    """
    lowered = rel.lower()
    if lowered in {"", "."}:
        return None
    parts = lowered.split("/")
    for glob in patterns.candidates(parts[0]):
        if _prefix_of(parts, glob.segments):
            return glob.text
    return None


def _prefix_of(parts: list[str], segments: tuple[str, ...]) -> bool:
    """Whether a path with ``parts`` could be a proper ancestor of a match."""
    from fnmatch import fnmatchcase  # noqa: PLC0415 - only for ancestor checks

    for index, part in enumerate(parts):
        if index >= len(segments):
            return False
        if segments[index] == "**":
            return True
        if not fnmatchcase(part, segments[index]):
            return False
    return len(parts) < len(segments)


def expand(
    workspace: str,
    patterns: ProtectPatterns,
    listdir: Callable[[str], list[tuple[str, bool]]] | None = None,
) -> tuple[str, ...]:
    """The existing paths the patterns protect (absolute, ``workspace`` resolved).

    A literal glob costs one ``lstat``; a glob with wildcards lists only the
    directories below its literal prefix that can hold a match. ``listdir``
    returns ``(name, is_directory)`` pairs (the resident helper passes a
    cached one); a protected symlink adds its target when that lies in the
    workspace (a write through the link lands there).
    """
    lister = listdir or _listdir
    found: dict[str, None] = {}
    for glob in patterns.globs:
        for rel in _matches(workspace, glob, lister):
            path = f"{workspace}/{rel}"
            found[path] = None
            if os.path.islink(path):
                target = os.path.realpath(path)
                if target.startswith(workspace + "/") and os.path.lexists(target):
                    found[target] = None
    return tuple(found)


def _matches(
    workspace: str, glob: _Glob, lister: Callable[[str], list[tuple[str, bool]]]
) -> list[str]:
    if not _WILD.search(glob.text):
        return [glob.text] if os.path.lexists(f"{workspace}/{glob.text}") else []
    literal: list[str] = []
    for segment in glob.text.split("/"):
        if _WILD.search(segment):
            break
        literal.append(segment)
    start = "/".join(literal)
    found: list[str] = []
    _walk(workspace, start, glob, lister, found)
    return found


def _walk(
    workspace: str,
    rel_dir: str,
    glob: _Glob,
    lister: Callable[[str], list[tuple[str, bool]]],
    found: list[str],
) -> None:
    directory = f"{workspace}/{rel_dir}" if rel_dir else workspace
    for name, is_dir in lister(directory):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if glob.pattern.fullmatch(rel.lower()):
            found.append(rel)
        elif is_dir and _prefix_of(rel.lower().split("/"), glob.segments):
            _walk(workspace, rel, glob, lister, found)


@dataclass(slots=True)
class WalkBudget:
    """How many directory entries :func:`holds_protected` may still look at.

    One budget serves every walk of one judgement, so a command naming many
    folders costs no more than one naming a single large one.
    """

    left: int = 4096


def holds_protected(
    workspace: str,
    rel: str,
    patterns: ProtectPatterns,
    budget: WalkBudget | None = None,
) -> tuple[str, str] | None:
    """A protected entry below the existing directory ``rel``, and its glob.

    :func:`contains_protected` says what *could* lie below a folder
    (``Data/**/*.accdb`` could lie below any folder in ``Data``); this looks:
    only directories that can hold a match are listed, and the first match
    ends the walk. Once the budget is spent the folder answers as if it held
    a match (``rel`` itself, "more than ... entries"): the safe side.

    Returns:
        ``(protected path, glob)``, workspace-relative, or None.
    """
    if contains_protected(rel, patterns) is None:
        return None
    spend = budget or WalkBudget()
    parts = rel.lower().split("/")
    for glob in patterns.candidates(parts[0]):
        if not _prefix_of(parts, glob.segments):
            continue
        found = _find_below(f"{workspace}/{rel}", rel, glob, spend)
        if found is not None:
            return found, glob.text
        if spend.left <= 0:
            return rel, f"{glob.text}: too many entries to look through"
    return None


def _find_below(
    directory: str, rel_dir: str, glob: _Glob, budget: WalkBudget
) -> str | None:
    """The first entry below ``directory`` that ``glob`` matches (depth first)."""
    for name, is_dir in _listdir(directory):
        budget.left -= 1
        if budget.left <= 0:
            return None
        rel = f"{rel_dir}/{name}"
        lowered = rel.lower()
        if glob.pattern.fullmatch(lowered):
            return rel
        if is_dir and _prefix_of(lowered.split("/"), glob.segments):
            found = _find_below(f"{directory}/{name}", rel, glob, budget)
            if found is not None or budget.left <= 0:
                return found
    return None


def _listdir(directory: str) -> list[tuple[str, bool]]:
    try:
        with os.scandir(directory) as entries:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    except OSError:
        return []
