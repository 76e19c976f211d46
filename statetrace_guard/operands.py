r"""What a command's arguments name as what it works on: the protected data among them.

A program that may write whatever it is given (a project script, a cmdlet or
program the classifier does not know, a policy rule's script with no named
output) and is given protected data (``-DatabasePath Data\WLLS\WLLS.accdb``,
or ``Data/WLLS``, a folder holding it) needs L2, decided before it starts:
below L2 the kernel would refuse its write after a partial change
(issue 13.3). ``decision.py`` asks :func:`named_protected` for such programs
only; programs known to only read, and programs whose written files the
classifier names (those have their own check), are not asked.

The words looked at are every argument after the program, except the script
the command runs and the files it is known to write:

* a plain word: ``Data/WLLS/WLLS.accdb``, ``.\Data\WLLS``, an absolute path;
* the value of an option or an assignment: ``--db=X``, ``-DatabasePath:X``,
  ``DB=X`` (``-DatabasePath X`` is a word after a word); each item of a
  PowerShell list ``a,b``;
* a glob (``Data/*``): the pattern itself and the paths it matches now.

A word is a path relative to where the command runs (``cd Data && tool
x.accdb``; ``\`` is a separator); ``..`` and symbolic links resolve as the
program would see them. Words known only at run time (``$X``, ``~``, a drive
letter) are skipped: the kernel still holds those.

A path counts when it lies in the workspace, below its root (the root and
what lies above it hold every protected path; the kernel keeps those), and
it is protected itself (it or an ancestor matches ``[protect]``: compared
case-insensitively, existing or not), or it is an existing folder (found
case-insensitively, as Windows would) holding a protected entry. A word that
only contains such a name (``--name=MyData``) or shares a prefix with one
(``Data2/``) names nothing protected.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from statetrace_guard.classify.paths import is_within
from statetrace_guard.protect import (
    ProtectPatterns,
    WalkBudget,
    contains_protected,
    holds_protected,
    protection,
)

__all__ = ["NamedProtected", "named_protected", "resolve_target"]

# ``--db=X``, ``-DatabasePath:X``, ``-Dkey=X``, ``DB=X``: the value is X.
_VALUE = re.compile(r"^(?:-{1,2}[^=:\s]+[=:]|[A-Za-z_][A-Za-z0-9_]*=)")
_GLOB = re.compile(r"[*?\[]")
_RUN_TIME = ("$", "`", "\n", "\0")
_PATH_MAX = 4096
_GLOB_MATCHES = 64


@dataclass(frozen=True, slots=True)
class NamedProtected:
    """A protected path an argument names.

    Attributes:
        argument: the workspace-relative path the argument names.
        protected: the protected path: the argument, or an entry below it.
        glob: the ``[protect]`` glob that protects it.
    """

    argument: str
    protected: str
    glob: str

    def describe(self) -> str:
        """The clause a reason uses: what the argument is, and which glob says so."""
        if self.protected == self.argument:
            return (
                f"its argument {self.argument} is protected data "
                f"([protect] {self.glob})"
            )
        return (
            f"its argument {self.argument} holds protected data "
            f"({self.protected}, [protect] {self.glob})"
        )


def resolve_target(target: str, cwd: str) -> str | None:
    """Resolve a path as the program would; None when it cannot be known.

    Backslashes are separators (PowerShell on Windows); a drive or provider
    prefix (``C:``, ``HKCU:``) and a home reference name places the guard
    cannot vouch for on this machine, and a name no file system here can
    hold (a lone surrogate) none at all. ``..`` and symbolic links resolve
    through the file system, as the program will see them.
    """
    text = target.replace("\\", "/")
    if text.startswith("~") or _has_drive(text) or not _encodable(text):
        return None
    joined = text if text.startswith("/") else f"{cwd}/{text}"
    return os.path.realpath(joined)


def _resolve_word(text: str, base: str, workspace: str) -> str | None:
    """:func:`resolve_target` of ``text`` from the resolved ``base``, cheaper.

    ``os.path.realpath`` looks at every component from ``/``; here only the
    word's own components are looked at (the base, or the workspace for an
    absolute path inside it, is resolved already), one ``lstat`` each until
    one is missing. A symbolic link hands the rest to ``realpath``.
    """
    posix = text.replace("\\", "/")
    if posix.startswith("~") or _has_drive(posix):
        return None
    start, rest = base, posix
    if posix.startswith("/"):
        inside = posix.startswith(workspace + "/")
        start, rest = (workspace, posix[len(workspace) :]) if inside else ("/", posix)
    path = start
    parts = rest.split("/")
    for index, part in enumerate(parts):
        if part in {"", "."}:
            continue
        if part == "..":
            path = os.path.dirname(path)
            continue
        step = f"{path.rstrip('/')}/{part}"
        left = "/".join([step, *parts[index + 1 :]])
        try:
            mode = os.lstat(step).st_mode
        except OSError:
            # Below a missing entry nothing exists, unless ``..`` climbs out.
            if ".." in parts[index + 1 :]:
                return os.path.realpath(left)
            return os.path.normpath(left)
        if stat.S_ISLNK(mode):
            return os.path.realpath(left)
        path = step
    return path


def _has_drive(text: str) -> bool:
    """True for ``C:...``, ``HKCU:...``, ``Env:...``: not a path on this disk."""
    head, sep, _ = text.partition(":")
    return bool(sep) and bool(head) and "/" not in head


def named_protected(
    argv: Sequence[str],
    *,
    pwsh: bool,
    cwd: str,
    workspace: str,
    patterns: ProtectPatterns,
    skip: Collection[str] = (),
) -> NamedProtected | None:
    """The first protected path the arguments ``argv[1:]`` name, or None.

    Args:
        argv: the command's words, the program first.
        pwsh: whether PowerShell parsed them (``a,b`` is a list).
        cwd: where the command runs; ``""`` when known only at run time
            (relative words are then skipped).
        workspace: the workspace root, resolved.
        patterns: the policy's compiled ``[protect]`` globs.
        skip: absolute paths not to count (the script run, known outputs).
    """
    budget = WalkBudget()  # every folder of this command shares it
    base = (_resolve_word(cwd, "/", workspace) or "") if cwd else ""
    ignored = {_resolve_word(path, "/", workspace) for path in skip}
    for text in _candidates(argv[1:], pwsh=pwsh):
        if not base and not text.replace("\\", "/").startswith("/"):
            continue
        for path in _expanded(text, base):
            resolved = _resolve_word(path, base, workspace)
            if resolved is None or resolved in ignored:
                continue
            found = _protected_at(resolved, workspace, patterns, budget)
            if found is not None:
                return found
    return None


def _candidates(words: Sequence[str], *, pwsh: bool) -> Iterator[str]:
    """The texts among ``words`` that may name a path."""
    for word in words:
        if not word or len(word) > _PATH_MAX or any(c in word for c in _RUN_TIME):
            continue
        if not _encodable(word):
            continue  # no file system name: it names nothing on one
        texts = [] if word.startswith("-") else [word]
        value = _VALUE.match(word)
        if value is not None and value.end() < len(word):
            texts.append(word[value.end() :])
        for text in texts:
            yield from (part for part in text.split(",") if part) if pwsh else (text,)


def _encodable(word: str) -> bool:
    """Whether ``word`` can be a file name here (a lone surrogate cannot)."""
    try:
        os.fsencode(word)
    except UnicodeError:
        return False
    return True


def _expanded(text: str, cwd: str) -> list[str]:
    """``text``, and when it is a glob the paths it matches now (bounded)."""
    if not _GLOB.search(text):
        return [text]
    import glob  # noqa: PLC0415 - only for the rare glob argument

    pattern = text.replace("\\", "/")
    matches = islice(glob.iglob(pattern, root_dir=cwd or None), _GLOB_MATCHES)
    return [text, *sorted(matches)]  # as the shell would pass them


def _protected_at(
    resolved: str, workspace: str, patterns: ProtectPatterns, budget: WalkBudget
) -> NamedProtected | None:
    """What protected data the resolved path is or holds."""
    if resolved == workspace or not is_within(resolved, workspace):
        return None
    rel = resolved[len(workspace) + 1 :]
    glob = protection(rel, patterns)
    if glob is not None:
        return NamedProtected(rel, rel, glob)
    if contains_protected(rel, patterns) is None:
        return None
    folder = _existing_dir(workspace, rel)
    if folder is None:
        return None
    found = holds_protected(workspace, folder, patterns, budget)
    return None if found is None else NamedProtected(rel, found[0], found[1])


def _existing_dir(workspace: str, rel: str) -> str | None:
    """``rel`` as an existing directory's workspace-relative path, any case."""
    if os.path.isdir(f"{workspace}/{rel}"):
        return rel
    here = workspace
    for segment in rel.split("/"):
        name = _fold(here, segment)
        if name is None:
            return None
        here = f"{here}/{name}"
    real = os.path.realpath(here)
    if real == workspace or not is_within(real, workspace) or not os.path.isdir(real):
        return None
    return real[len(workspace) + 1 :]


def _fold(directory: str, segment: str) -> str | None:
    """The entry of ``directory`` named ``segment`` in any case, or None."""
    wanted = segment.lower()
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    return next((name for name in names if name.lower() == wanted), None)
