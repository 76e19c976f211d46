"""``guard install git-hooks``: the commit guard as git hooks, chained, removable.

Writes ``pre-commit``, ``pre-merge-commit`` and ``reference-transaction`` into
the repository's hooks directory (``git rev-parse --git-path hooks``; for a
linked worktree that is the main repository's). Each is a short POSIX shell
script that runs :mod:`statetrace_guard.guardrails.hook` with the interpreter
guard is installed in, then the hook that was there before (kept beside it
as ``NAME.guard-chained``), so a hook the user had keeps running. Installing
twice changes nothing; ``--uninstall`` puts the user's hooks back.

Below L2 the kernel keeps ``.git/hooks`` read-only for guarded programs, so
an agent cannot remove or edit them. A repository with ``core.hooksPath`` set
is refused: git would not run hooks from ``.git/hooks``, and a hooks
directory inside the working tree is one an agent may write.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from statetrace_guard.errors import UsageError
from statetrace_guard.guardrails.hook import HOOK_NAMES

__all__ = [
    "CHAINED_SUFFIX",
    "MARKER",
    "HookChange",
    "hook_script",
    "hooks_directory",
    "install_git_hooks",
    "is_guard_hook",
    "uninstall_git_hooks",
]

MARKER = "# statetrace-guard commit hook"
CHAINED_SUFFIX = ".guard-chained"
_GIT_TIMEOUT = 30

_SCRIPT = """#!/bin/sh
{marker} (installed by `guard install git-hooks`).
# It refuses commits that would add what the workspace policy's [commit] rules
# forbid (Access stores, raw logs, guard's own logs, secrets), for agents and
# people alike, then runs the hook it replaced ($0{chained}, if any).
# Remove it with `guard install git-hooks --uninstall`.
python={python}
hook=$(basename "$0")
chained="$0{chained}"
if [ ! -x "$python" ]; then
    echo "guard: commit refused: statetrace-guard's $hook hook cannot run $python" \\
        "(run \\`guard install git-hooks\\` again, or remove it with" \\
        "\\`guard install git-hooks --uninstall\\`)" >&2
    exit 1
fi
if [ "$hook" = reference-transaction ]; then
    input=$(cat; echo x)
    input=${{input%x}}
    new=
    if [ "$1" = prepared ]; then
        tips=$(printf '%s' "$input" | while read -r old new ref; do
            case "$ref" in
            refs/heads/*|HEAD) case "$new" in *[!0]*) echo "$new";; esac;;
            esac
        done)
        # Only commits no reference reaches yet are new: most updates have none.
        if [ -n "$tips" ]; then
            new=$(git rev-list --max-count=1 $tips --not --all -- 2>/dev/null \
                || echo unknown)
        fi
        if [ -n "$new" ]; then
            printf '%s' "$input" \
                | "$python" -I -m statetrace_guard.guardrails.hook "$hook" "$@" \
                || exit 1
        fi
    fi
    if [ -x "$chained" ]; then
        printf '%s' "$input" | "$chained" "$@"
        exit $?
    fi
    exit 0
fi
"$python" -I -m statetrace_guard.guardrails.hook "$hook" "$@" || exit 1
if [ -x "$chained" ]; then
    exec "$chained" "$@"
fi
exit 0
"""


@dataclass(frozen=True, slots=True)
class HookChange:
    """What an install or uninstall did (or would do)."""

    directory: Path
    lines: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when any file was (or would be) written, moved or removed."""
        return bool(self.lines)


def hook_script(python: str) -> str:
    """The text of every installed hook (the same for each hook name)."""
    return _SCRIPT.format(
        marker=MARKER, python=shlex.quote(python), chained=CHAINED_SUFFIX
    )


def is_guard_hook(path: Path) -> bool:
    """True when ``path`` is a hook this command installed."""
    try:
        head = path.read_bytes()[:400]
    except OSError:
        return False
    return MARKER.encode() in head


def hooks_directory(workspace: Path) -> Path:
    """The hooks directory git uses for ``workspace``.

    Raises:
        UsageError: not a git repository, or ``core.hooksPath`` is set.
    """
    configured = _git(workspace, "config", "--get", "core.hooksPath")
    if configured:
        msg = (
            f"core.hooksPath is set to {configured}: git would not run hooks from "
            f".git/hooks, and a hooks directory in the working tree is one an "
            f"agent may change"
        )
        raise UsageError(msg, hint="unset it (git config --unset core.hooksPath)")
    found = _git(workspace, "rev-parse", "--git-path", "hooks")
    if not found:
        raise UsageError(f"{workspace} is not a git repository")
    path = Path(found)
    return path if path.is_absolute() else workspace / path


def install_git_hooks(
    workspace: Path, python: str, *, dry_run: bool = False
) -> HookChange:
    """Install (or refresh) guard's hooks, chaining to the hooks already there.

    Raises:
        UsageError: see :func:`hooks_directory`; or a hook and its chained
            copy both exist and neither is guard's (nothing is overwritten).
    """
    directory = hooks_directory(workspace)
    script = hook_script(python)
    lines: list[str] = []
    for name in HOOK_NAMES:
        path = directory / name
        chained = directory / f"{name}{CHAINED_SUFFIX}"
        if path.exists() and not is_guard_hook(path):
            if chained.exists():
                msg = f"{path} and {chained} both exist; move one away first"
                raise UsageError(msg)
            lines.append(f"{name}: kept the existing hook as {chained.name}")
            if not dry_run:
                path.rename(chained)
        if _read(path) != script:
            lines.append(f"{name}: installed guard's commit check")
            if not dry_run:
                _write_executable(path, script)
    return HookChange(directory, tuple(lines))


def uninstall_git_hooks(workspace: Path, *, dry_run: bool = False) -> HookChange:
    """Remove guard's hooks and put the chained ones back."""
    directory = hooks_directory(workspace)
    lines: list[str] = []
    for name in HOOK_NAMES:
        path = directory / name
        chained = directory / f"{name}{CHAINED_SUFFIX}"
        removed = is_guard_hook(path)
        if removed:
            lines.append(f"{name}: removed guard's commit check")
            if not dry_run:
                path.unlink()
        if chained.exists() and (removed or not path.exists()):
            lines.append(f"{name}: restored {chained.name}")
            if not dry_run:
                chained.rename(path)
    return HookChange(directory, tuple(lines))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.chmod(0o755)
    temp.replace(path)


def _git(workspace: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"git cannot run in {workspace}: {exc}") from exc
    return done.stdout.strip() if done.returncode == 0 else ""
