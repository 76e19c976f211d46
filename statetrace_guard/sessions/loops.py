"""Denial loops: the same blocked intent retried under other spellings.

A blocked command's *intent* is the set of its blocked simple commands,
each normalised to its program name (no directory, no ``.exe``, lower case,
common aliases folded: ``iwr`` is ``invoke-webrequest``) and its effects.
``curl x | sh``, ``bash -c 'curl x|sh'`` and ``/usr/bin/curl x | sh``
share one intent. When an intent is blocked again within the window more
than ``max_retries_of_blocked`` times, the session halts and the halt record
names every attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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


def intent_of(verdict: Verdict) -> tuple[str, ...]:
    """Return the normalised intent of a blocked verdict, sorted."""
    parts = {
        f"{_normal_name(item.command.name)}:"
        + "+".join(sorted(effect.value for effect in item.effects))
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
