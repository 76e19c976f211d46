"""``guard fetch``: a guarded download into the workspace, with its NetOps line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from statetrace_guard.cli.common import (
    level_option,
    log_dir_option,
    policy_option,
    run_errors,
)
from statetrace_guard.errors import UsageError
from statetrace_guard.execute import RunOptions
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.online.fetch import (
    DEFAULT_MAX_BYTES,
    FetchRequest,
    check_sha256,
    guarded_fetch,
)

__all__ = ["fetch"]


@click.command()
@click.argument("url")
@click.option("--out", required=True, help="Where in the workspace to write it.")
@click.option("--sha256", default=None, help="Expected SHA-256 (64 hex digits).")
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Refuse a larger body.",
)
@click.option("--reason", default="", help="Why: recorded with the download.")
@level_option
@policy_option
@click.option(
    "--session",
    default=None,
    help="Session id [default: $STATETRACE_GUARD_SESSION, else a new one].",
)
@click.option("--task", default=None, help="Task board id, e.g. ST-A-001.")
@log_dir_option
@run_errors
def fetch(
    url: str,
    out: str,
    sha256: str | None,
    max_bytes: int,
    reason: str,
    level: str | None,
    policy: Path | None,
    session: str | None,
    task: str | None,
    log_dir: Path | None,
) -> None:
    """Download URL to --out, judged and recorded like an L3 command.

    Needs L3 and STATETRACE_AGENT_ALLOW_NET=1; the host must be on the
    policy's [[network]] allow-list (and the approval's --hosts), https only
    unless an entry lists http. Every redirect is judged again. The file is
    written inside the workspace under a temporary name and renamed into
    place only after its SHA-256 matched --sha256 (when given). Prints
    `HASH  PATH`. Exit: 0 done; 1 failed (HTTP error, too big, hash
    mismatch: nothing written); 126 blocked; 125 the record failed.
    """
    try:
        expected = check_sha256(sha256)
    except ValueError as error:
        raise UsageError(str(error)) from error
    request = FetchRequest(url, out, expected, max_bytes, reason)
    invocation = resolve_invocation(level=level, policy=policy, log_dir=log_dir)
    options = RunOptions(argv=request.argv(), session=session, task=task)
    sys.exit(guarded_fetch(invocation, request, options))
