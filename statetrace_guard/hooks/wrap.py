"""Rewrite a runtime's shell command so that it runs through ``guard run``.

The model's command becomes ``GUARD run --session ID -- bash -c 'COMMAND'``
with ``COMMAND`` quoted exactly (``shlex.quote``: POSIX single quotes), so the
shell that finally runs it sees the same text the model wrote, and the guard
judges, records and confines it.

Never twice: a command that already starts with ``guard run [OPTIONS] --``
loses that prefix (the hook's own session and options replace the model's:
a model must not pick its session, policy or log directory), and one that
starts with the shim ``guard-sh`` has it replaced by ``bash`` (the shim is a
drop-in for it). Only a prefix of plain words is taken apart; the rest of the
text is left for bash to parse exactly as before, inside ``bash -c``. A
``guard run`` in any other form is refused (:class:`GuardPrefixError`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "GuardPrefixError",
    "escalation_argv",
    "guard_program",
    "strip_guard",
    "wrap_argv",
    "wrap_command",
]

# A word without quoting or shell syntax: removing it leaves the rest of the
# command's text meaning exactly what it meant (shlex's "safe" characters).
_SAFE = r"[A-Za-z0-9_@%+=:,./-]"
_PLAIN = rf"{_SAFE}+"
_DIRS = rf"(?:{_SAFE}*/)?"
_GUARD = rf"(?:{_DIRS}guard|{_DIRS}python[0-9.]*\s+-m\s+statetrace_guard)"
_RUN = re.compile(rf"\s*{_GUARD}\s+run(?:\s+{_PLAIN})*?\s+--(?:\s+|$)")
_SHIM = re.compile(rf"\s*{_DIRS}guard-sh(?=\s|$)")
_ANY_RUN = re.compile(rf"\s*(?:{_GUARD}\s+run|{_DIRS}guard-sh)(?:\s|$)")
_SHIM_GUARD_OPTION = re.compile(r"\s+--")
_MAX_DEPTH = 8


class GuardPrefixError(ValueError):
    """The command calls ``guard run`` or the shim in a form not taken apart."""


def strip_guard(command: str) -> str:
    """Return the command without a leading ``guard run ... --`` or shim.

    Raises:
        GuardPrefixError: it starts with ``guard run`` or ``guard-sh`` in a
            form with quoting, without ``--``, or without a command.
    """
    for _ in range(_MAX_DEPTH):
        match = _RUN.match(command)
        if match is not None:
            command = command[match.end() :]
            if not command.strip():
                raise GuardPrefixError("`guard run --` is not followed by a command")
            continue
        match = _SHIM.match(command)
        if match is not None:
            rest = command[match.end() :]
            if _SHIM_GUARD_OPTION.match(rest):
                raise GuardPrefixError("guard-sh is given guard options")
            return "bash" + rest
        if _ANY_RUN.match(command):
            raise GuardPrefixError(
                "`guard run` must be followed by plain options and `--`"
            )
        return command
    raise GuardPrefixError("`guard run` nested too deeply")


def escalation_argv(command: str) -> list[str] | None:
    """The argv of a plain ``guard escalate --to L --reason TEXT``, else None.

    ``guard run`` serves that request itself (its argv, not a shell, must
    name guard), so it is passed on as an argv, re-quoted word by word.
    """
    from statetrace_guard.sessions.escalation import (  # noqa: PLC0415 - rare path
        parse_escalation,
    )

    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    return argv if parse_escalation(argv) is not None else None


def guard_program(argv0: str, executable: str) -> list[str]:
    """The argv prefix that runs this same guard, by absolute path.

    Runtimes run commands in login shells that may reset PATH, so the
    rewritten command names the program that runs the hook.
    """
    path = Path(argv0)
    if path.name.lower() in {"guard", "guard.exe"}:
        return [str(path.absolute())]
    return [executable, "-m", "statetrace_guard"]


def _run_prefix(guard: Sequence[str], session_id: str, level: str | None) -> list[str]:
    options = ["--session", session_id]
    if level is not None:
        options += ["--level", level]
    return [*guard, "run", *options, "--"]


def wrap_command(
    command: str, *, guard: Sequence[str], session_id: str, level: str | None
) -> str:
    """``GUARD run --session ID [--level L] -- bash -c 'COMMAND'``."""
    return shlex.join([*_run_prefix(guard, session_id, level), "bash", "-c", command])


def wrap_argv(
    argv: Sequence[str], *, guard: Sequence[str], session_id: str, level: str | None
) -> str:
    """``GUARD run --session ID [--level L] -- ARGV...``, each word quoted."""
    return shlex.join([*_run_prefix(guard, session_id, level), *argv])
