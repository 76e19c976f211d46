"""What every subcommand shares: shared options and the error boundary."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import click

from statetrace_guard.errors import GuardError, run_exit_code

__all__ = [
    "enforcement_option",
    "enforcement_value",
    "guard_errors",
    "level_option",
    "log_dir_option",
    "policy_option",
    "report_error",
    "run_errors",
]

P = ParamSpec("P")
R = TypeVar("R")

level_option = click.option(
    "--level",
    type=click.Choice(["L0", "L1", "L2", "L3"], case_sensitive=False),
    default=None,
    help="Autonomy level [default: $STATETRACE_GUARD_LEVEL, else L1].",
)
policy_option = click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Policy file [default: guard.toml at the workspace root, else built-in].",
)
enforcement_option = click.option(
    "--enforcement",
    type=click.Choice(["auto", "kernel", "none"], case_sensitive=False),
    default="auto",
    help="Judge as a machine whose kernel enforces the levels' envelopes "
    "(kernel) or not (none: code the classifier cannot name is never allowed) "
    "[default: auto, this machine].",
)
log_dir_option = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Log directory [default: Logs/ under the workspace root].",
)


def enforcement_value(option: str) -> Literal["kernel", "none"] | None:
    """The ``--enforcement`` choice for resolve_invocation (None: this machine)."""
    choice = option.lower()
    if choice == "kernel":
        return "kernel"
    if choice == "none":
        return "none"
    return None


def report_error(error: GuardError) -> None:
    """Print ``error: <message>`` and the hint, one line each, on stderr."""
    click.echo(f"error: {error.message}", err=True)
    hint = error.hint()
    if hint:
        click.echo(f"hint: {hint}", err=True)


def guard_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn a GuardError into its message and exit code; nothing else is caught.

    ``GUARD_DEBUG=1`` re-raises with the traceback instead.
    """
    return _error_boundary(function, lambda code: code)


def run_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Like guard_errors, but only 124..127 leave ``guard run`` (else 125)."""
    return _error_boundary(function, run_exit_code)


def _error_boundary(
    function: Callable[P, R], exit_code_for: Callable[[int], int]
) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except GuardError as error:
            if _debug():
                raise
            report_error(error)
            sys.exit(exit_code_for(error.exit_code))

    return wrapper


def _debug() -> bool:
    import os  # noqa: PLC0415 - only on the error path

    return os.environ.get("GUARD_DEBUG") == "1"
