"""``guard run``: the command every agent command goes through."""

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
from statetrace_guard.execute import RunOptions, guarded_run
from statetrace_guard.invocation import resolve_invocation

__all__ = ["run"]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@level_option
@policy_option
@click.option(
    "--session",
    default=None,
    help="Session id [default: $STATETRACE_GUARD_SESSION, else a new one].",
)
@click.option("--task", default=None, help="Task board id, e.g. ST-A-001.")
@log_dir_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Kill the whole process tree after SECONDS (exit 124).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between SIGTERM and SIGKILL [default: policy, 5].",
)
@click.option(
    "--max-memory",
    type=click.IntRange(min=1),
    default=None,
    help="Address-space limit in BYTES for the program.",
)
@click.option(
    "--max-processes",
    type=click.IntRange(min=1),
    default=None,
    help="Process-count limit for the program.",
)
@click.option(
    "--durable", is_flag=True, help="fsync each record before the program starts."
)
@click.option(
    "--require-sandbox",
    is_flag=True,
    help="Exit 125 instead of warning when enforcement is missing.",
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@run_errors
def run(
    level: str | None,
    policy: Path | None,
    session: str | None,
    task: str | None,
    log_dir: Path | None,
    timeout: float | None,
    grace: float | None,
    max_memory: int | None,
    max_processes: int | None,
    durable: bool,
    require_sandbox: bool,
    argv: tuple[str, ...],
) -> None:
    """Judge `-- PROGRAM [ARGS...]`, record it, and run it if allowed.

    The program runs exactly as given (no shell is added), with stdio passed
    through. Exit: the program's status (128+N if killed by signal N); 124
    timeout; 125 guard failed before running (bad policy, log not writable,
    required sandbox missing); 126 blocked; 127 program not found.

    On Linux a resident helper judges, records and (unless stdio is a
    terminal) runs the program on this process's descriptors, from the
    second run on; STATETRACE_GUARD_DAEMON=off keeps everything in-process.
    """
    if not argv:
        raise UsageError("no command given", hint="guard run -- PROGRAM [ARGS...]")
    invocation = resolve_invocation(level=level, policy=policy, log_dir=log_dir)
    options = RunOptions(
        argv=argv,
        session=session,
        task=task,
        timeout=timeout,
        grace=grace,
        durable=durable,
        require_sandbox=require_sandbox,
        max_memory=max_memory,
        max_processes=max_processes,
    )
    if len(argv) > 1 and argv[1] == "fetch":
        from statetrace_guard.online.fetch import (  # noqa: PLC0415 - rare path
            guarded_fetch,
            parse_fetch,
        )

        request = parse_fetch(argv)
        if request is not None:  # the guard downloads it itself
            sys.exit(guarded_fetch(invocation, request, options))
    sys.exit(guarded_run(invocation, options))
