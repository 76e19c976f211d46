"""The ``fd`` handler: ``fd PATTERN -x CMD ARGS ;`` runs CMD per match.

The command after ``-x``/``--exec`` (or batched, ``-X``) runs once per found
path, which fd appends unless a placeholder (``{}``, ``{/}``, ``{.}``)
names it; it is classified like ``find -exec``. The exec options are the
entry's ``handler_data.exec_options``; every other option is the engine's.
"""

from __future__ import annotations

from statetrace_guard.classify.engine import Judge, generic
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import READ, Verdict, dynamic, may_be_option

__all__ = ["fd"]

_MATCH = Word("{}", static=False)  # a path fd found: anywhere under its roots


def fd(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """Classify ``fd``: its own options, then what ``-x`` runs per match."""
    runs = frozenset(entry.data.get("exec_options", ()))
    for i, word in enumerate(args):
        if may_be_option(word):
            return dynamic(entry.spec, f"an {name} argument may expand to -x")
        if word.text in runs:
            end = next(
                (j for j in range(i + 1, len(args)) if args[j].text == ";"), len(args)
            )
            command = tuple(_placeholder(w) for w in args[i + 1 : end])
            if command and all(w.static for w in command[1:]):
                command = (*command, _MATCH)  # fd appends the match itself
            if not command:
                return dynamic(entry.spec, f"{name} {word.text} without a command")
            own = generic(entry, name, args[:i] + args[end + 1 :], ctx, judge)
            reason = f"{name} {word.text} runs a command per match"
            return Verdict(
                own.effects | READ,
                entry.spec,
                (*own.reasons, reason),
                own.writes,
                nested=(command,),
            )
    return generic(entry, name, args, ctx, judge)


def _placeholder(word: Word) -> Word:
    """``{}``, ``{/}``, ``{.}``: a matched path, known only at run time."""
    return Word(word.text, static=False) if "{" in word.text else word
