"""Writes into a nested git repository's config or hooks are ``dynamic``.

The decision holds the workspace's own ``.git/config`` and ``.git/hooks`` at
L2. A repository below it (``git init sub``) or in a temporary directory has
the same power: ``printf '[core]fsmonitor=cmd' > sub/.git/config`` followed
by ``git -C sub status`` runs ``cmd``. Such a write is ``dynamic`` here, so
it needs the operator whatever the level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from statetrace_guard.classify.model import ClassifyContext, SimpleCommand
from statetrace_guard.classify.paths import resolve_path
from statetrace_guard.levels import Effect

__all__ = ["flag_nested_repo_configs"]

_REPO_CONFIG = re.compile(r"(?:^|/)\.git/(?:config|hooks(?:/|$))", re.IGNORECASE)


def flag_nested_repo_configs(
    commands: Iterable[SimpleCommand], ctx: ClassifyContext
) -> tuple[SimpleCommand, ...]:
    """Return ``commands`` with writes into a nested repository's config flagged.

    Args:
        commands: the classified simple commands.
        ctx: the top-level context (workspace and cwd).

    Returns:
        The same commands; one that writes such a path gains ``dynamic``.
    """
    return tuple(_flag(command, ctx) for command in commands)


def _flag(command: SimpleCommand, ctx: ClassifyContext) -> SimpleCommand:
    hit = next((path for path in command.written if _nested(path, ctx)), None)
    if hit is None:
        return command
    why = f"writes {hit}: a nested repository's config or hooks run programs"
    return replace(
        command,
        effects=command.effects | {Effect.DYNAMIC},
        reasons=(*command.reasons, why),
    )


def _nested(raw: str, ctx: ClassifyContext) -> bool:
    """Tell whether ``raw`` is a repository config outside the workspace root's."""
    path = raw.replace("\\", "/")
    if not _REPO_CONFIG.search(path):
        return False
    resolved = resolve_path(path, ctx.cwd) if ctx.cwd else None
    root = ctx.workspace.rstrip("/") + "/.git/"
    return resolved is None or not resolved.startswith(root)
