"""``guard run``: the command every agent command goes through."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from statetrace_guard import run_options
from statetrace_guard.cli.common import run_errors
from statetrace_guard.daemon.client import FALLBACK_VARIABLE
from statetrace_guard.errors import RunFinished, UsageError
from statetrace_guard.execute import RunOptions, guarded_run
from statetrace_guard.invocation import resolve_invocation

__all__ = ["run"]


class _TableType(click.ParamType):  # type: ignore[type-arg] # click 8.2+ is generic, 8.1 is not
    """A click type converting with :func:`run_options.convert` (one parser)."""

    def __init__(self, kind: str, metavar: str) -> None:
        self.kind = kind
        self.name = metavar.lower()
        self._metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:  # noqa: ARG002 - click's signature
        """The placeholder shown in --help."""
        return self._metavar

    def convert(
        self,
        value: Any,  # noqa: ANN401 - click passes anything
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> Any:  # noqa: ANN401 - the table's value
        """Convert as the helper's client does, or fail with click's usage error."""
        try:
            return run_options.convert(self.kind, str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _declared_options(function: Callable[..., None]) -> Callable[..., None]:
    """Apply one click option per entry of :data:`run_options.OPTIONS`."""
    for name, dest, kind, metavar, text in reversed(run_options.OPTIONS):
        if kind == "flag":
            function = click.option(name, dest, is_flag=True, help=text)(function)
        else:
            option_type = _TableType(kind, metavar)
            function = click.option(name, dest, type=option_type, help=text)(function)
    return function


@click.command(context_settings={"allow_interspersed_args": False})
@_declared_options
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@run_errors
def run(argv: tuple[str, ...], **options: Any) -> None:  # noqa: ANN401 - the table's values
    """Judge `-- PROGRAM [ARGS...]`, record it, and run it if allowed.

    The program runs exactly as given (no shell is added), with stdio passed
    through. Exit: the program's status (128+N if killed by signal N); 2
    usage error (nothing ran); 123 outcome unknown (it started, then guard
    lost its supervisor: look before running it again); 124 timeout; 125
    guard failed before running (bad policy, log not writable, required
    sandbox missing); 126 blocked; 127 program not found.

    On Linux a resident helper judges, records and (unless stdio is a
    terminal) runs the program on this process's descriptors, from the
    second run on; STATETRACE_GUARD_DAEMON=off keeps everything in-process.
    """
    # Set by the helper's client when it could not serve (never the program's).
    fallback = os.environ.pop(FALLBACK_VARIABLE, None)
    if not argv:
        raise UsageError("no command given", hint="guard run -- PROGRAM [ARGS...]")
    invocation = resolve_invocation(
        level=options.pop("level"),
        policy=_path(options.pop("policy")),
        log_dir=_path(options.pop("log_dir")),
    )
    options["fallback"] = fallback
    run_options_ = RunOptions(argv=argv, **options)
    if len(argv) > 1 and argv[1] == "fetch":
        from statetrace_guard.online.fetch import (  # noqa: PLC0415 - rare path
            guarded_fetch,
            parse_fetch,
        )

        request = parse_fetch(argv)
        if request is not None:  # the guard downloads it itself
            raise RunFinished(guarded_fetch(invocation, request, run_options_))
    if run_options_.background:
        from statetrace_guard.background import start_job  # noqa: PLC0415 - jobs only

        raise RunFinished(start_job(invocation, run_options_))
    raise RunFinished(guarded_run(invocation, run_options_))


def _path(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) else None
