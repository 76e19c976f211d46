"""L2 overrides: which a command uses, and whether the settings were reset.

The policy names override parameters (PowerShell's ``-ThreadCeilingOverride``
and friends, matched case-insensitively, as ``-Name value`` or
``-Name:value``), override variables (glob patterns such as
``STATETRACE_*``; guard's own variables and the opt-in variables are not
overrides) and watched files. A session snapshots the watched files by
SHA-256 when it starts; ``status`` and ``end`` diff them against the disk.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from statetrace_guard.levels import OPT_IN_INSTALL, OPT_IN_NET

__all__ = [
    "Change",
    "Overrides",
    "diff_watched",
    "find_parameters",
    "find_variables",
    "snapshot_watched",
]

_NOT_OVERRIDES = frozenset({OPT_IN_NET, OPT_IN_INSTALL})
_GUARD_PREFIX = "STATETRACE_GUARD_"
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Overrides:
    """The override parameters and variables one command used."""

    parameters: tuple[tuple[str, str | None], ...] = ()
    variables: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        """True when anything was overridden."""
        return bool(self.parameters or self.variables)

    def as_fields(self) -> dict[str, dict[str, str | None]]:
        """Render for a record: ``parameters`` and ``variables`` as objects."""
        return {
            "parameters": dict(self.parameters),
            "variables": dict(self.variables),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A watched file whose content differs from the session's snapshot."""

    path: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        """``created``, ``deleted`` or ``modified``."""
        if self.before is None:
            return "created"
        return "deleted" if self.after is None else "modified"


def find_parameters(
    argv: Sequence[str], names: Iterable[str]
) -> tuple[tuple[str, str | None], ...]:
    """Return each override parameter in ``argv`` with its value (if any)."""
    wanted = {name.lower(): name for name in names}
    found: list[tuple[str, str | None]] = []
    for index, word in enumerate(argv):
        head, colon, inline = word.partition(":")
        name = wanted.get(head.lower())
        if name is None:
            continue
        if colon:
            found.append((name, inline))
        else:
            following = argv[index + 1] if index + 1 < len(argv) else None
            value = following if following and not following.startswith("-") else None
            found.append((name, value))
    return tuple(found)


def find_variables(
    env: Mapping[str, str], patterns: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """Return the environment's override variables, sorted by name."""
    matches = _any_of(tuple(pattern.upper() for pattern in patterns))
    found = [
        (name, value)
        for name, value in env.items()
        if _is_override(name.upper(), matches)
    ]
    return tuple(sorted(found))


def _is_override(upper: str, matches: Callable[[str], object]) -> bool:
    if upper in _NOT_OVERRIDES or upper.startswith(_GUARD_PREFIX):
        return False
    return matches(upper) is not None


@functools.lru_cache(maxsize=16)
def _any_of(globs: tuple[str, ...]) -> Callable[[str], object]:
    """One regex for all the globs, each as ``fnmatchcase`` reads it.

    Every variable of every command is matched against the policy's globs.
    """
    if not globs:
        return lambda _name: None
    either = "|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs)
    return re.compile(either).match


def snapshot_watched(workspace: Path, patterns: Iterable[str]) -> dict[str, str | None]:
    """Hash each watched file (globs expanded); None for a missing file."""
    snapshot: dict[str, str | None] = {}
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            for path in sorted(workspace.glob(pattern)):
                snapshot[path.relative_to(workspace).as_posix()] = _sha256(path)
        else:
            snapshot[pattern] = _sha256(workspace / pattern)
    return snapshot


def diff_watched(
    workspace: Path, before: Mapping[str, str | None], patterns: Iterable[str]
) -> list[Change]:
    """Compare the snapshot with the disk now; return what differs."""
    now = snapshot_watched(workspace, patterns)
    for path in before:
        now.setdefault(path, _sha256(workspace / path))
    return [
        Change(path, before.get(path), digest)
        for path, digest in sorted(now.items())
        if before.get(path) != digest
    ]


def _sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return digest.hexdigest()
