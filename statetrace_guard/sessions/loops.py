"""Denial loops: the same blocked intent retried under other spellings.

A blocked command's *intent* is the set of its blocked simple commands, each
normalised to four parts:

* the program (no directory, no ``.exe``, lower case, spellings of one tool
  folded: ``python3`` is ``python``, ``iwr`` and PowerShell's ``curl`` are
  ``invoke-webrequest``);
* what it was asked to do: its script, its ``-m`` module, ``<inline>`` code
  (``-c``, a heredoc into ``-``), or its subcommand (``git push``);
* its effects;
* the blocked target: the hosts it reaches, the files it writes.

So ``curl x | sh``, ``bash -c 'curl x|sh'`` and ``/usr/bin/curl x | sh``
share one intent, while ``python3 foo.py``, ``python3 -m mypy`` and a
heredoc into ``python3 -`` are three, and different programs are never one.
When an intent is blocked again within the window more than
``max_retries_of_blocked`` times, the session halts and the halt record
names every attempt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from statetrace_guard.classify.model import SimpleCommand
from statetrace_guard.decision import CommandVerdict, Verdict
from statetrace_guard.sessions.store import Denial, parse_ts

__all__ = ["DEFAULT_WINDOW", "LoopVerdict", "detect_loop", "intent_of"]

DEFAULT_WINDOW = timedelta(minutes=15)
_ALIASES = {
    "iwr": "invoke-webrequest",
    "wget": "invoke-webrequest",
    "curl": "invoke-webrequest",
    "irm": "invoke-restmethod",
    "iex": "invoke-expression",
    "rm": "remove-item",
    "del": "remove-item",
    "ri": "remove-item",
    "rmdir": "remove-item",
    "erase": "remove-item",
    "dash": "sh",
    "bash": "sh",
    "zsh": "sh",
    "powershell": "pwsh",
    "py": "python",
    "python3": "python",
    "pip3": "pip",
}
_SUFFIXES = (".exe", ".cmd", ".bat", ".com")
_INLINE_FLAGS = frozenset({"-c", "-e", "--eval", "-", "-command", "-encodedcommand"})
# A subcommand looks like a word: `push`, `run-script`, `test`.
_SUBCOMMAND = re.compile(r"[a-z][a-z0-9_-]{0,30}")


@dataclass(frozen=True, slots=True)
class LoopVerdict:
    """A detected loop: the intent and every attempt inside the window."""

    intent: tuple[str, ...]
    attempts: tuple[Denial, ...]

    def reason(self, limit: int) -> str:
        """One sentence for the halt record and the block message."""
        return (
            f"denial loop: the blocked intent {' + '.join(self.intent)} was tried "
            f"{len(self.attempts)} times (more than {limit} retries)"
        )


def _normal_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for suffix in _SUFFIXES:
        base = base.removesuffix(suffix)
    return _ALIASES.get(base, base)


def _blocked_part(item: CommandVerdict, verdict: Verdict) -> bool:
    return (
        item is verdict.blocking
        or item.required is None
        or (item.required > verdict.level)
    )


def _asked(command: SimpleCommand) -> str:
    """What the program was asked to do: script, module, inline code, subcommand."""
    if command.script:
        return command.script.lower()
    args = [arg.lower() for arg in command.argv[1:]]
    if "-m" in args:
        index = args.index("-m")
        return f"-m {args[index + 1]}" if index + 1 < len(args) else "-m"
    reads_stdin = not args and any("stdin" in why for why in command.reasons)
    if reads_stdin or _INLINE_FLAGS.intersection(args):
        return "<inline>"
    for arg in args:
        if arg.startswith("-"):
            continue
        return arg if _SUBCOMMAND.fullmatch(arg) else ""
    return ""


def _target(item: CommandVerdict) -> str:
    """What the block was about: hosts reached, files written."""
    hosts = sorted(
        {(urlsplit(url).hostname or url).lower() for url in item.command.urls}
    )
    written = sorted({path.replace("\\", "/").lower() for path in item.command.written})
    return ",".join([*hosts, *written])


def intent_of(verdict: Verdict) -> tuple[str, ...]:
    """Return the normalised intent of a blocked verdict, sorted."""
    parts = {
        ":".join(
            (
                _normal_name(item.command.name),
                _asked(item.command),
                "+".join(sorted(effect.value for effect in item.effects)),
                _target(item),
            )
        ).rstrip(":")
        for item in verdict.commands
        if _blocked_part(item, verdict)
    }
    return tuple(sorted(parts))


def detect_loop(
    history: Sequence[Denial],
    latest: Denial,
    max_retries: int,
    window: timedelta = DEFAULT_WINDOW,
) -> LoopVerdict | None:
    """Return the loop when ``latest`` makes more than ``max_retries`` retries.

    Args:
        history: earlier denials since the window opened (oldest first).
        latest: the denial just recorded.
        max_retries: the policy's ``max_retries_of_blocked``.
        window: how far back a retry counts.
    """
    if not latest.intent:
        return None
    since: datetime = parse_ts(latest.ts) - window
    attempts = [
        denial
        for denial in history
        if denial.intent == latest.intent and parse_ts(denial.ts) >= since
    ]
    attempts.append(latest)
    if len(attempts) - 1 > max_retries:
        return LoopVerdict(latest.intent, tuple(attempts))
    return None
