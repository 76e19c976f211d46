"""Handlers for programs that run other programs by a grammar of their own.

Plain wrappers (``timeout``, ``nice``, ``sudo``...) are registry data: their
options stop at the first operand and the rest is the wrapped command. What
needs code: ``env`` (assignments, ``-S`` splitting, ``-u``), ``command -v``,
``watch`` (joins its arguments into a shell command), ``xargs`` and
``parallel`` (the command gets words from the input), and ``find`` (an
expression language with ``-exec ... ;``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import replace

from statetrace_guard.classify.engine import PLACEHOLDER, Judge, generic, options_of
from statetrace_guard.classify.environment import dangerous_env, variable_kind
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
    read,
)

__all__ = ["command", "env", "find", "parallel", "watch", "xargs"]


# Clearing one of these switches the guard off or hijacks lookup.
def env(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``env [-i] [-u NAME] [-S STRING] [NAME=VALUE]... [COMMAND [ARGS]]``."""
    _ = (name, ctx, judge)
    return _env_words(entry, args, [])


def _env_words(entry: ProgramEntry, args: tuple[Word, ...], sets: list[str]) -> Verdict:
    parsed = options_of(entry, args, stop_at_operand=True)
    if parsed.problems:
        return dynamic(entry.spec, "an env argument may expand to an option")
    splits = set(entry.data.get("split_options", ()))
    chdirs = set(entry.data.get("chdir_options", ()))
    for _, spelling, value in parsed.options:
        if spelling in chdirs:
            return dynamic(entry.spec, "env -C runs the command in another directory")
        if spelling in splits:
            after = args[parsed.rest_at :] if parsed.rest_at is not None else ()
            cleared, _ = _env_clears(entry, parsed.options)
            return _env_split(entry, value, after, [*sets, *cleared])
    rest = list(args[parsed.rest_at :]) if parsed.rest_at is not None else []
    dirs: list[Word] = []
    while rest and "=" in rest[0].text and not rest[0].text.startswith("="):
        word = rest.pop(0)
        name, _, text = word.text.partition("=")
        sets.append(name)
        if variable_kind(name) == "write-dir":
            dirs.append(Word(text, word.static))
    verdict = _env_verdict(entry, sets, tuple(rest))
    cleared, risky = _env_clears(entry, parsed.options)
    verdict = replace(verdict, env_sets=(*verdict.env_sets, *cleared))
    if risky:  # clearing a hijack can undo what the operator set
        verdict = replace(
            verdict,
            effects=verdict.effects | DYNAMIC,
            reasons=(*verdict.reasons, f"env -u clears {', '.join(risky)}"),
        )
    if dirs:  # env TMPDIR=/x sort: programs write into that directory
        verdict = replace(verdict, effects=verdict.effects | WRITE, writes=tuple(dirs))
    return verdict


def _env_clears(
    entry: ProgramEntry, options: Sequence[tuple[str, str, Word | None]]
) -> tuple[list[str], list[str]]:
    """The variables ``env -u`` clears, and those among them the table flags.

    Clearing counts as setting (the decision sees it); clearing a hijack
    (or a name known only at run time) is dynamic, as bash ``unset`` is.
    """
    unsets = set(entry.data.get("unset_options", ()))
    cleared: list[str] = []
    risky: list[str] = []
    for _, spelling, value in options:
        if spelling not in unsets:
            continue
        gone = value.text if value is not None and value.static else ""
        if not gone or dangerous_env(gone):
            risky.append(gone or "a variable named at run time")
        if gone:
            cleared.append(gone)
    return cleared, risky


def _env_split(
    entry: ProgramEntry, value: Word | None, rest: tuple[Word, ...], sets: list[str]
) -> Verdict:
    """``env -S 'A=1 cmd args'``: the string is split into more env arguments."""
    if value is None or not value.static:
        return dynamic(entry.spec, "env -S string not static")
    try:
        words = tuple(Word(w) for w in shlex.split(value.text))
    except ValueError:
        return dynamic(entry.spec, "env -S string does not split")
    inner = _env_words(entry, (*words, *rest), [])
    risky = any(dangerous_env(s) for s in sets)
    return replace(
        inner,
        effects=inner.effects | DYNAMIC if risky else inner.effects,
        env_sets=(*sets, *inner.env_sets),
    )


def _env_verdict(
    entry: ProgramEntry, sets: list[str], rest: tuple[Word, ...]
) -> Verdict:
    risky = [s for s in sets if dangerous_env(s)]
    nested = (rest,) if rest else ()
    if risky:
        why = f"env sets {', '.join(risky)}"
        return Verdict(DYNAMIC, entry.spec, (why,), nested=nested, env_sets=tuple(sets))
    reason = "env runs the command it wraps" if rest else "env prints the environment"
    return Verdict(READ, entry.spec, (reason,), nested=nested, env_sets=tuple(sets))


def command(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``command -v NAME`` looks a name up; ``command CMD`` runs CMD."""
    lookups = set(entry.data.get("lookup_flags", ()))
    if any(w.text in lookups for w in args[:2]):
        return read(entry.spec, f"{name} -v looks a name up")
    return generic(entry, name, args, ctx, judge)


def watch(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``watch [opts] CMD ARGS``: the joined arguments run with ``sh -c``."""
    parsed = options_of(entry, args, stop_at_operand=True)
    rest = args[parsed.rest_at :] if parsed.rest_at is not None else ()
    if parsed.problems or not rest:
        return dynamic(entry.spec, f"{name} command not static")
    source = " ".join(w.text for w in rest)
    static = all(w.static for w in rest)
    reason = f"{name} runs its command with sh"
    return Verdict(READ, entry.spec, (reason,), scripts=(Word(source, static),))


def xargs(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``xargs [opts] [CMD [ARGS]]``: CMD runs with words from the input."""
    parsed = options_of(entry, args, stop_at_operand=True)
    if parsed.problems:
        return dynamic(entry.spec, "xargs option not static")
    replacing = set(entry.data.get("replace_options", ()))
    token = next(
        (
            (value.text if value is not None and value.text else "{}")
            for _, spelling, value in parsed.options
            if spelling in replacing
        ),
        None,
    )
    rest = args[parsed.rest_at :] if parsed.rest_at is not None else ()
    cmd = tuple(rest) or (Word("echo"),)
    if token:
        cmd = tuple(
            Word(w.text.replace(token, PLACEHOLDER.text), static=False)
            if token in w.text
            else w
            for w in cmd
        )
    else:
        cmd = (*cmd, PLACEHOLDER)
    reason = "xargs runs a command on its input"
    return Verdict(READ, entry.spec, (reason,), nested=(cmd,))


def parallel(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``parallel [opts] CMD ::: inputs``: CMD runs once per input."""
    separators = set(entry.data.get("separators", ()))
    cut = next((i for i, w in enumerate(args) if w.text in separators), None)
    if cut is None:
        return dynamic(entry.spec, "parallel reads commands from stdin")
    parsed = options_of(entry, args[:cut], stop_at_operand=True)
    rest = args[parsed.rest_at : cut] if parsed.rest_at is not None else ()
    if parsed.problems or not rest:
        return dynamic(entry.spec, "parallel command not static or missing")
    reason = "parallel runs a command per input"
    return Verdict(READ, entry.spec, (reason,), nested=((*rest, PLACEHOLDER),))


def find(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``find PATHS EXPRESSION``: ``-exec CMD ;`` runs, ``-fprint F`` writes."""
    runs = frozenset(entry.data.get("exec_actions", ()))
    writing = frozenset(entry.data.get("write_actions", ()))
    deleting = frozenset(entry.data.get("delete_actions", ()))
    nested: list[tuple[Word, ...]] = []
    writes: list[Word] = []
    starts = [w for w in args if not w.text.startswith(("-", "(", "!"))][:1]
    i = 0
    while i < len(args):
        word = args[i]
        if may_be_option(word):
            return dynamic(entry.spec, "a find argument may expand to an action")
        if word.text in runs:
            end = _find_end(args, i + 1)
            match = Word((starts[0].text if starts else ".") + "/*", static=False)
            nested.append(
                tuple(match if w.text == "{}" else w for w in args[i + 1 : end])
            )
            i = end + 1
            continue
        if word.text in writing and i + 1 < len(args):
            writes.append(args[i + 1])
        if word.text in deleting:
            writes.extend(starts or [Word(".")])
        i += 1
    effects = WRITE if writes else READ
    return Verdict(
        effects, entry.spec, ("find walks a tree",), tuple(writes), nested=tuple(nested)
    )


def _find_end(args: tuple[Word, ...], i: int) -> int:
    while i < len(args) and args[i].text not in (";", "+"):
        i += 1
    return i
