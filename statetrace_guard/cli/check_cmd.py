"""``guard check`` and ``guard explain``: judge without running or logging."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

import click

from statetrace_guard.cli.common import (
    enforcement_option,
    enforcement_value,
    guard_errors,
    level_option,
    policy_option,
)
from statetrace_guard.errors import ExitCode, UsageError
from statetrace_guard.evaluate import Judgement, evaluate
from statetrace_guard.explain import explain_json, explain_lines
from statetrace_guard.invocation import Invocation, resolve_invocation, session_task
from statetrace_guard.result import verdict_json

__all__ = ["check", "explain"]

_ARGV = click.argument("argv", nargs=-1, type=click.UNPROCESSED)


@click.command(context_settings={"ignore_unknown_options": True})
@level_option
@policy_option
@enforcement_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--batch",
    type=click.File("rb"),
    default=None,
    help="Judge JSON Lines from FILE ('-' for stdin), one result per line.",
)
@_ARGV
@guard_errors
def check(
    level: str | None,
    policy: Path | None,
    enforcement: str,
    as_json: bool,
    batch: IO[bytes] | None,
    argv: tuple[str, ...],
) -> None:
    """Classify and decide on `-- PROGRAM [ARGS...]`; run and log nothing.

    Exit 0 when allowed, 1 when blocked (with --batch: 1 when any line is
    blocked, 2 when any line is malformed).
    """
    invocation = resolve_invocation(
        level=level,
        policy=policy,
        log_dir=None,
        enforcement=enforcement_value(enforcement),
    )
    if batch is not None:
        sys.exit(_run_batch(batch, invocation))
    judgement = _judge(argv, invocation)
    if as_json:
        click.echo(json.dumps(verdict_json(judgement.verdict), ensure_ascii=False))
    else:
        verdict = judgement.verdict
        word = "allowed" if verdict.allowed else "blocked"
        click.echo(f"{word} at {verdict.level.name}: " + "; ".join(verdict.reasons))
    sys.exit(ExitCode.OK if judgement.verdict.allowed else ExitCode.NEGATIVE)


@click.command(context_settings={"ignore_unknown_options": True})
@level_option
@policy_option
@enforcement_option
@click.option("--json", "as_json", is_flag=True, help="Print the account as JSON.")
@_ARGV
@guard_errors
def explain(
    level: str | None,
    policy: Path | None,
    enforcement: str,
    as_json: bool,
    argv: tuple[str, ...],
) -> None:
    """Explain how `-- PROGRAM [ARGS...]` is parsed, judged and why.

    Shows each simple command with its effects, the rule or built-in spec
    that decided it, the lowest level that allows the whole command and the
    part that forces it, and a lower-level alternative where one exists.
    Exit 0 when allowed at the level, 1 when blocked.
    """
    invocation = resolve_invocation(
        level=level,
        policy=policy,
        log_dir=None,
        enforcement=enforcement_value(enforcement),
    )
    judgement = _judge(argv, invocation)
    if as_json:
        payload = explain_json(judgement, invocation.policy)
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        for line in explain_lines(judgement, invocation.policy):
            click.echo(line)
    sys.exit(ExitCode.OK if judgement.verdict.allowed else ExitCode.NEGATIVE)


def _judge(argv: tuple[str, ...], invocation: Invocation) -> Judgement:
    if not argv:
        raise UsageError("no command given", hint="guard check -- PROGRAM [ARGS...]")
    inspector = invocation.inspector(session_task(invocation))
    return evaluate(
        argv, invocation.level, invocation.policy, invocation.place, inspector
    )


def _run_batch(stream: IO[bytes], invocation: Invocation) -> int:
    import gc  # noqa: PLC0415

    from statetrace_guard.batch import BatchStats, judge_lines  # noqa: PLC0415

    # NOTE(speed): everything loaded so far (modules, the policy) lives until
    # exit; frozen, the collector stops walking it. A batch allocates enough
    # to trigger full collections, each of which walked all of it (25-50 ms
    # each on a 20,000-line batch here, a fifth of the batch's time).
    gc.freeze()
    stats = BatchStats()
    out = sys.stdout
    for text in judge_lines(
        stream, invocation.policy, invocation.place, invocation.level, stats
    ):
        out.write(text + "\n")
    out.flush()
    if stats.malformed:
        click.echo(f"error: {stats.malformed} malformed line(s) in the batch", err=True)
        return ExitCode.USAGE
    return ExitCode.NEGATIVE if stats.blocked else ExitCode.OK
