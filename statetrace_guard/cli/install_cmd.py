"""``guard install claude-code|codex|git-hooks``: wire guard's hooks in.

``claude-code`` and ``codex`` add ``guard hook`` to an agent runtime's
configuration; ``git-hooks`` adds the commit guard to the repository's git
hooks (:mod:`statetrace_guard.guardrails.githooks`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors
from statetrace_guard.errors import UsageError
from statetrace_guard.hooks.protocol import RUNTIMES
from statetrace_guard.hooks.wrap import guard_program
from statetrace_guard.install import (
    CODEX_TRUST_NOTE,
    Scope,
    apply_changes,
    config_path,
    install_hooks,
    uninstall_hooks,
)
from statetrace_guard.paths import workspace_root

__all__ = ["install"]


GIT_HOOKS = "git-hooks"


@click.command()
@click.argument("runtime", type=click.Choice((*RUNTIMES, GIT_HOOKS)))
@click.option(
    "--scope",
    type=click.Choice(["project", "user"]),
    default="project",
    show_default=True,
    help="This workspace's config, or the user's.",
)
@click.option("--uninstall", is_flag=True, help="Remove guard's hooks instead.")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@guard_errors
def install(runtime: str, scope: Scope, uninstall: bool, dry_run: bool) -> None:
    """Add (or remove) `guard hook RUNTIME` in the runtime's hook configuration.

    claude-code: .claude/settings.json (project) or ~/.claude/settings.json
    (user). codex: .codex/hooks.json (project) or $CODEX_HOME/hooks.json
    (user, default ~/.codex). Only guard's own entries change; every other
    hook and setting is kept. Running it twice changes nothing.

    git-hooks: pre-commit, pre-merge-commit and reference-transaction hooks in
    this repository's .git/hooks that refuse commits breaking the policy's
    [commit] rules (every commit, a person's too); a hook already there is
    kept as NAME.guard-chained and still runs. Project scope only.
    """
    if runtime == GIT_HOOKS:
        _git_hooks(scope, uninstall=uninstall, dry_run=dry_run)
        return
    path = config_path(runtime, scope, workspace_root(Path.cwd()), os.environ)
    if uninstall:
        change = uninstall_hooks(path, runtime)
    else:
        change = install_hooks(
            path, runtime, guard_program(sys.argv[0], sys.executable)
        )
    if not dry_run:
        apply_changes(change)
    verb = "would change" if dry_run else "changed"
    click.echo(f"{path}: {verb if change.changed else 'unchanged'}")
    for line in change.lines:
        click.echo(f"  {line}")
    if runtime == "codex" and not uninstall:
        click.echo(CODEX_TRUST_NOTE)


def _git_hooks(scope: Scope, *, uninstall: bool, dry_run: bool) -> None:
    from statetrace_guard.guardrails.githooks import (  # noqa: PLC0415 - this target only
        install_git_hooks,
        uninstall_git_hooks,
    )

    if scope != "project":
        raise UsageError("git-hooks are installed per repository: --scope project")
    workspace = workspace_root(Path.cwd())
    if uninstall:
        change = uninstall_git_hooks(workspace, dry_run=dry_run)
    else:
        change = install_git_hooks(workspace, sys.executable, dry_run=dry_run)
    verb = "would change" if dry_run else "changed"
    click.echo(f"{change.directory}: {verb if change.changed else 'unchanged'}")
    for line in change.lines:
        click.echo(f"  {line}")
