"""The deciding reason of a recorded command, read back from its ``reasons``.

A judgement records one ``needs`` line per simple command
(``curl: network (posix:curl) needs L3 with X=1: why``) followed by that
command's own notes, and the session gate appends its refusal (a halt, a
budget, an approval no longer in force) last. ``guard explain`` names the
simple command that forced the whole command's level: the strictest ``needs``
line, the first one on a tie. This module finds the same part from the record
alone, so ``guard log``, ``log summary`` and ``guard report`` show why a
command was blocked rather than the first reason, which is always the
wrapper's (``bash: read (posix:bash) needs L0``).

Reasons in other forms (a future record, another tool's) are kept as they are:
the last one stands in when no ``needs`` line is found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Deciding", "deciding", "deciding_text"]

_NEEDS = re.compile(
    r"^(?P<name>.+?): (?P<effects>[a-z, ]+) \((?P<spec>[^()]*)\) "
    r"needs (?P<need>never|L[0-3])(?P<opt_in> with [^:]+)?: (?P<why>.*)$",
    re.DOTALL,
)
_STRICTNESS = {"L0": 0, "L1": 1, "L2": 2, "L3": 3, "never": 4}


@dataclass(frozen=True, slots=True)
class Deciding:
    """The part of a command that decided its verdict.

    Attributes:
        text: the reason as recorded.
        name: the simple command's name (None for a gate refusal).
        effects: its effects as written (``read, write``), "" for a gate refusal.
        need: ``L0``..``L3``, ``never``, or None for a gate refusal.
        opt_in: the opt-in it also needs (``STATETRACE_AGENT_ALLOW_NET=1``), or "".
        why: the reason's explanation.
    """

    text: str
    name: str | None
    effects: str = ""
    need: str | None = None
    opt_in: str = ""
    why: str = ""

    def short(self) -> str:
        """Return the reason without the command's spec (``curl: network needs L3``)."""
        if self.name is None or self.need is None:
            return self.text
        need = self.need + (f" with {self.opt_in}" if self.opt_in else "")
        return f"{self.name}: {self.effects} needs {need}: {self.why}"

    def brief(self) -> str:
        """Return the reason for a table: ``curl: network needs L3 with X=1``.

        Effects other than ``read`` are named; the explanation is kept unless
        it only says the policy's level for an effect.
        """
        if self.name is None or self.need is None:
            return self.text
        effects = [e for e in self.effects.split(", ") if e != "read"] or ["read"]
        need = self.need + (f" with {self.opt_in}" if self.opt_in else "")
        why = "" if self.why.startswith("the policy's level for") else f": {self.why}"
        return f"{self.name}: {', '.join(effects)} needs {need}{why}"


def _parse(text: str) -> Deciding | None:
    match = _NEEDS.match(text)
    if match is None:
        return None
    return Deciding(
        text=text,
        name=match["name"],
        effects=match["effects"],
        need=match["need"],
        opt_in=(match["opt_in"] or "").removeprefix(" with "),
        why=match["why"],
    )


def _level_allows(session_level: object, part: Deciding) -> bool:
    """True when the session's level alone would have let ``part`` run."""
    if part.need is None or part.opt_in or not isinstance(session_level, str):
        return False
    have = _STRICTNESS.get(session_level)
    return have is not None and have >= _STRICTNESS[part.need]


def deciding(record: Mapping[str, Any]) -> Deciding | None:
    """Return the part that decided a command record, or None without reasons.

    For a blocked command whose strictest part the session's level allows
    (so the gate refused it), the gate's refusal (the last reason) decides.
    """
    reasons = [str(reason) for reason in record.get("reasons") or []]
    if not reasons:
        return None
    parts = [part for part in map(_parse, reasons) if part is not None]
    if not parts:
        return Deciding(text=reasons[-1], name=None)
    strictest = max(parts, key=lambda part: _STRICTNESS[part.need or "never"])
    blocked = record.get("decision") == "block"
    if blocked and _level_allows(record.get("level"), strictest):
        last = reasons[-1]
        if _parse(last) is None and not _is_note_of(last, parts):
            return Deciding(text=last, name=None)
    return strictest


def _is_note_of(reason: str, parts: Sequence[Deciding]) -> bool:
    """True when ``reason`` is a simple command's own note (``ls: ls only reads``)."""
    return any(reason.startswith(f"{part.name}: ") for part in parts)


def deciding_text(record: Mapping[str, Any], form: str = "short") -> str | None:
    """Return the deciding reason as text (None when there is none).

    ``form`` is ``short`` (without the spec), ``brief`` (for tables) or
    ``full`` (as recorded).
    """
    part = deciding(record)
    if part is None:
        return None
    if form == "brief":
        return part.brief()
    return part.short() if form == "short" else part.text
