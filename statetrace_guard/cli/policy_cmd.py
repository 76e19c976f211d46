"""``guard policy show`` and ``guard policy lint``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, level_option, policy_option
from statetrace_guard.invocation import resolve_invocation, resolve_level
from statetrace_guard.policy import load_policy
from statetrace_guard.policy_examples import check_examples
from statetrace_guard.policy_view import policy_lines

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Show the effective policy or validate a policy file."""


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
