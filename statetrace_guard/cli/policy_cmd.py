"""``guard policy show``, ``guard policy lint`` and ``guard policy accept``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, level_option, policy_option
from statetrace_guard.evaluate import POLICY_FILE_NAME
from statetrace_guard.invocation import resolve_invocation, resolve_level
from statetrace_guard.paths import workspace_root
from statetrace_guard.policy import load_policy, load_policy_bytes
from statetrace_guard.policy_examples import check_examples
from statetrace_guard.policy_init import BASES, init_policy
from statetrace_guard.policy_view import policy_lines
from statetrace_guard.sessions.operator import require_operator
from statetrace_guard.workspaces import accept_policy

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Show the effective policy, validate a policy file, or start one."""


@policy.command("show")
@level_option
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the policy as JSON.")
@guard_errors
def show(level: str | None, policy: Path | None, as_json: bool) -> None:
    """Print the effective policy; with --level, only what that level allows."""
    invocation = resolve_invocation(level=level, policy=policy, log_dir=None)
    only = resolve_level(level, {}) if level else None
    if as_json:
        data = invocation.policy.model.model_dump(mode="json")
        data["source"] = invocation.policy.source
        data["sha256"] = invocation.policy.sha256
        click.echo(json.dumps(data, indent=2))
        return
    for line in policy_lines(invocation.policy, only):
        click.echo(line)


@policy.command("lint")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard_errors
def lint(file: Path) -> None:
    """Validate FILE: schema, patterns, and every rule's match/not_match examples.

    Exit 0 when valid, 3 when not.
    """
    compiled = load_policy(file)
    checked = check_examples(compiled)
    click.echo(f"ok: {file}: {len(compiled.rules)} rules, {checked} examples hold")


@policy.command("accept")
@guard_errors
def accept() -> None:
    """Accept this workspace's guard.toml as it is now (operators only).

    guard pins a workspace's policy the first time it runs there; a policy
    that appears or changes afterwards is refused until it is accepted here.
    Refused inside a guarded command. Exit 3 when the file is invalid.
    """
    require_operator("guard policy accept", os.environ)
    workspace = workspace_root(Path.cwd())
    candidate = workspace / POLICY_FILE_NAME
    if not candidate.is_file():
        accept_policy(os.path.realpath(workspace), None)
        click.echo(f"accepted: no {POLICY_FILE_NAME} in {workspace} (built-in policy)")
        return
    raw = candidate.read_bytes()
    load_policy_bytes(raw, str(candidate))  # an invalid file is never accepted
    digest = hashlib.sha256(raw).hexdigest()
    accept_policy(os.path.realpath(workspace), digest)
    click.echo(f"accepted: {candidate} (sha256 {digest[:16]})")


@policy.command("init")
@click.option(
    "--from",
    "base",
    type=click.Choice(sorted(BASES)),
    default="generic",
    show_default=True,
    help="The built-in policy the new guard.toml extends.",
)
@click.option("--force", is_flag=True, help="Replace an existing guard.toml.")
@guard_errors
def init(base: str, force: bool) -> None:
    """Write guard.toml at the workspace root, extending a built-in policy.

    The file is short and commented; `guard policy show` prints the result.
    The operator wrote it, so it is accepted as well (see `guard policy
    accept`). Refused inside a guarded command. Exit 2 when guard.toml
    exists (without --force).
    """
    require_operator("guard policy init", os.environ)
    workspace = workspace_root(Path.cwd())
    written = init_policy(workspace / POLICY_FILE_NAME, base, force=force)
    digest = hashlib.sha256(written.read_bytes()).hexdigest()
    accept_policy(os.path.realpath(workspace), digest)
    click.echo(
        f"wrote {written} (extends builtin:{base}); accepted (sha256 {digest[:16]})"
    )
