"""The ``guard run`` options, declared once for both of its parsers.

``guard run`` is parsed in two places: the resident helper's client
(:mod:`statetrace_guard.daemon.client`), which must not import click, and
the click command (:mod:`statetrace_guard.cli.run_cmd`), which serves help,
usage errors and the in-process path. Both are built from :data:`OPTIONS`:
click gets one ``click.option`` per entry, and :func:`parse` reads the same
table with the same conversions (click's types call :func:`convert`).
:func:`parse` never guesses: anything it does not accept (``--help``, an
unknown option, a bad value) is left to click, which prints the usage error
(exit 2).

Import-light on purpose (no typing, no dataclasses): the client pays for
every import.
"""

from __future__ import annotations

import os

__all__ = ["KINDS", "LEVELS", "OPTIONS", "convert", "parse"]

LEVELS = ("L0", "L1", "L2", "L3")

# (option, destination, kind, metavar, help). The kinds, and what both
# parsers accept for them:
#   level       one of LEVELS, any case
#   file        a path that is not an existing directory (made absolute)
#   dir         a path that is not an existing file (made absolute)
#   text        any string
#   positive    a float > 0
#   nonnegative a float >= 0
#   count       an int >= 1
#   flag        no value
OPTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "--level",
        "level",
        "level",
        "L",
        "Autonomy level [default: $STATETRACE_GUARD_LEVEL, else L1].",
    ),
    (
        "--policy",
        "policy",
        "file",
        "FILE",
        "Policy file [default: guard.toml at the workspace root, else built-in].",
    ),
    (
        "--session",
        "session",
        "text",
        "ID",
        "Session id [default: $STATETRACE_GUARD_SESSION, else a new one].",
    ),
    ("--task", "task", "text", "ID", "Task board id, e.g. ST-A-001."),
    (
        "--log-dir",
        "log_dir",
        "dir",
        "DIR",
        "Log directory [default: Logs/ under the workspace root].",
    ),
    (
        "--timeout",
        "timeout",
        "positive",
        "SECONDS",
        "Kill the whole process tree after SECONDS (exit 124).",
    ),
    (
        "--grace",
        "grace",
        "nonnegative",
        "SECONDS",
        "Seconds between SIGTERM and SIGKILL [default: policy, 5].",
    ),
    (
        "--max-memory",
        "max_memory",
        "count",
        "BYTES",
        "Address-space limit in BYTES for the program.",
    ),
    (
        "--max-processes",
        "max_processes",
        "count",
        "N",
        "Process-count limit for the program.",
    ),
    (
        "--durable",
        "durable",
        "flag",
        "",
        "fsync each record before the program starts.",
    ),
    (
        "--background",
        "background",
        "flag",
        "",
        (
            "Start it as a session job: supervised after guard run returns, "
            "output to a log; see `guard jobs`."
        ),
    ),
    (
        "--require-sandbox",
        "require_sandbox",
        "flag",
        "",
        "Exit 125 instead of warning when enforcement is missing.",
    ),
)
KINDS = frozenset(kind for _, _, kind, _, _ in OPTIONS)
_BY_NAME = {name: (dest, kind) for name, dest, kind, _, _ in OPTIONS}


def parse(args: list[str]) -> tuple[dict[str, object], list[str]] | None:
    """Parse ``guard run`` ARGS exactly as the click command would.

    Returns:
        ``(options, argv)``: options by destination, converted (levels in
        upper case, numbers as numbers, paths absolute); or None for
        anything click must answer (help, an unknown option, a missing or
        bad value, no program).
    """
    scanned = _scan(args)
    if scanned is None or not scanned[1]:
        return None
    given, argv = scanned
    # Like click, only the last value of an option given twice is converted.
    options: dict[str, object] = {}
    for dest, (kind, value) in given.items():
        try:
            options[dest] = True if value is None else convert(kind, value)
        except ValueError:
            return None
    return options, argv


def _scan(
    args: list[str],
) -> tuple[dict[str, tuple[str, str | None]], list[str]] | None:
    """Raw option values by destination (None for a flag), and the argv after."""
    given: dict[str, tuple[str, str | None]] = {}
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            return given, args[index + 1 :]
        if not word.startswith("-") or word == "-":
            break
        name, has_value, value = word.partition("=")
        if name not in _BY_NAME:
            return None
        dest, kind = _BY_NAME[name]
        if kind == "flag" and has_value:
            return None
        if kind != "flag" and not has_value:
            index += 1
            if index >= len(args):
                return None
            value = args[index]  # even one like an option, as click takes it
        given[dest] = (kind, None if kind == "flag" else value)
        index += 1
    return given, args[index:]


def convert(kind: str, value: str) -> object:
    """The value of an option of ``kind``, as both parsers give it.

    Raises:
        ValueError: the value does not fit; the message says why.
    """
    if kind == "level":
        if value.upper() not in LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LEVELS)}")
        return value.upper()
    if kind in {"file", "dir"}:
        return _path(kind, value)
    if kind == "text":
        return value
    if kind == "count":
        number: float = int(value)
    else:
        number = float(value)
    if not _MINIMUM[kind](number):
        raise ValueError(f"{value} is not {_BOUND[kind]}")
    return number


# NaN and infinities compare False/True as floats do; both parsers share this.
_MINIMUM = {
    "positive": lambda number: number > 0,
    "nonnegative": lambda number: number >= 0,
    "count": lambda number: number >= 1,
}
_BOUND = {"positive": "above 0", "nonnegative": "0 or more", "count": "1 or more"}


def _path(kind: str, value: str) -> str:
    """An absolute path; refuses a directory for a file and the reverse."""
    if not value:
        raise ValueError("an empty path")
    if kind == "file" and os.path.isdir(value):
        raise ValueError(f"{value} is a directory")
    if kind == "dir" and os.path.isfile(value):
        raise ValueError(f"{value} is a file")
    return os.path.abspath(value)
