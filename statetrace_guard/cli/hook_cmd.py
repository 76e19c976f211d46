"""``guard hook RUNTIME`` and ``guard record``: the agent-runtime integrations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from statetrace_guard.cli.common import guard_errors, log_dir_option
from statetrace_guard.hooks.protocol import RUNTIMES

__all__ = ["hook", "record"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runtime", type=click.Choice(RUNTIMES))
def hook(runtime: str) -> None:
    """Answer one hook call of RUNTIME (JSON on stdin); `guard install` wires it.

    PreToolUse: shell commands are rewritten to run through `guard run
    --session ID` (or denied with the block line and the next step when
    guard already blocks them); file tools (Write, Edit, MultiEdit,
    NotebookEdit, apply_patch) are judged as a shell write to their paths.
    PostToolUse: file edits are recorded (`file.edited`). SessionStart and
    SessionEnd start and end the guard session mapped to the runtime's.
    Anything malformed or failing exits 2 (the runtime's block) with one
    line on stderr.
    """
    from statetrace_guard.hooks.main import main as hook_main  # noqa: PLC0415

    sys.exit(hook_main([runtime]))


@click.command()
@click.option(
    "--session", default=None, help="Session id [default: $STATETRACE_GUARD_SESSION]."
)
@click.option("--tool", required=True, help="The tool that wrote the files.")
@click.option("--runtime", default="cli", show_default=True, help="Who wrote them.")
@click.option("--tool-use-id", default=None, help="The runtime's id of the call.")
@log_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the record's summary.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@guard_errors
def record(
    session: str | None,
    tool: str,
    runtime: str,
    tool_use_id: str | None,
    log_dir: Path | None,
    as_json: bool,
    paths: tuple[Path, ...],
) -> None:
    """Append a chained `file.edited` record for PATHS written outside guard run.

    Each path is hashed as it is now (SHA-256 and size; a missing path is
    recorded as removed). The session must exist and be open.
    """
    from statetrace_guard.api import record as record_edit  # noqa: PLC0415

    result = record_edit(
        [str(path) for path in paths],
        tool=tool,
        session=session,
        runtime=runtime,
        tool_use_id=tool_use_id,
        log_dir=log_dir,
    )
    if as_json:
        summary = {
            "schema_version": 1,
            "session_id": result.session_id,
            "seq": result.seq,
            "sha256": result.record_sha256,
            "files": [dict(item) for item in result.files],
        }
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        for item in result.files:
            digest = item["sha256"] or "(removed)"
            click.echo(f"recorded {item['path']} {item['bytes']} bytes {digest}")
