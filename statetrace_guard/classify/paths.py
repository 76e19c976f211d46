"""Path arithmetic for classification: lexical, pure, never touching the disk.

Shared by the bash and PowerShell halves: script paths are normalised to the
workspace-relative POSIX form policy rules name (``Tools/X.ps1``). Where a
written path lands (guard-owned, protected, workspace, outside) is decided in
one place, ``decision.py`` with :mod:`statetrace_guard.protect`.
"""

from __future__ import annotations

import posixpath

from statetrace_guard.classify.model import ClassifyContext

__all__ = [
    "SINK_FILES",
    "is_within",
    "normalize_script_path",
    "resolve_path",
]

_NOT_STATIC = ("$", "`")

# Written "files" that are not files: writing them changes nothing on disk.
SINK_FILES = frozenset(
    {
        "/dev/null",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/fd/1",
        "/dev/fd/2",
        "/dev/tty",
        "/dev/zero",
    }
)


def _to_posix(raw: str) -> str:
    """Turn Windows separators and drive-less forms into POSIX slashes."""
    return raw.replace("\\", "/")


def resolve_path(raw: str, cwd: str) -> str | None:
    """Return the absolute, lexically normalised POSIX path of ``raw``.

    ``None`` when the path is not knowable: it holds an expansion, or starts
    with ``~`` (home, resolved here as outside everything we know), or the
    cwd is unknown (empty).
    """
    if not raw or any(mark in raw for mark in _NOT_STATIC):
        return None
    text = _to_posix(raw)
    if text.startswith("~"):
        return None
    if len(text) >= 2 and text[1] == ":":  # noqa: PLR2004 - drive letter "C:"
        return None
    if not text.startswith("/"):
        if not cwd:
            return None
        text = posixpath.join(cwd, text)
    out = posixpath.normpath(text)
    # normpath keeps a leading "//" (POSIX allows it to be special); fold it.
    return "/" + out.lstrip("/")


def is_within(path: str, root: str) -> bool:
    """Tell whether absolute ``path`` is ``root`` or lies under it."""
    root = root.rstrip("/") or "/"
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def normalize_script_path(raw: str, ctx: ClassifyContext) -> str | None:
    """Return ``raw`` as a workspace-relative POSIX path, or ``None``.

    Backslashes become slashes, ``./`` and ``..`` collapse, relative paths
    resolve against ``ctx.cwd``. ``None`` when the path leaves the workspace
    or is not static.
    """
    resolved = resolve_path(raw, ctx.cwd)
    if resolved is None or not is_within(resolved, ctx.workspace):
        return None
    rel = posixpath.relpath(resolved, ctx.workspace)
    return "." if rel == "." else rel
