"""Bash builtins that assign or clear variables by name.

``export``/``declare``/``local``/``typeset``/``readonly``, ``read``,
``printf -v``, ``mapfile``/``readarray``, ``getopts``, ``wait -p``, ``let``
and ``unset`` all change a variable named in their arguments. Every name
they touch goes to ``env_sets`` so the decision can protect guard's own and
the operator's opt-in variables; clearing counts as setting. A name that is
not static (``export $X=1``) could be any variable: ``dynamic``. So is a
name that changes what later commands run (``read PATH``), since ``set -a``
or an existing export carries it to every child.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from statetrace_guard.classify.engine import Judge
from statetrace_guard.classify.environment import dangerous_env, variable_kind
from statetrace_guard.classify.fileops import operands
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import DYNAMIC, READ, WRITE, Verdict

__all__ = [
    "arithmetic_names",
    "assigned",
    "declare",
    "getopts",
    "let",
    "mapfile",
    "read",
    "subscript_runs",
    "unset",
    "wait",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ``X=1``, ``X+=1``, ``X[i]<<=2``, ``X++``, ``--X``: a name being assigned.
_ARITH_ASSIGN = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+|--)"
    r"|(?:\+\+|--)\s*([A-Za-z_][A-Za-z0-9_]*)"
)


def arithmetic_names(text: str) -> tuple[str, ...]:
    """Return the variables an arithmetic expression assigns (``X=1``, ``X++``)."""
    found = [a or b for a, b in _ARITH_ASSIGN.findall(text)]
    return tuple(dict.fromkeys(found))


def subscript_runs(name: str) -> bool:
    """Tell whether an assignment target's subscript holds an expansion.

    NOTE(bash): bash evaluates an indexed array's subscript as arithmetic
    when it assigns (``printf -v 'a[$(id)]' x``, ``read 'a[$(id)]'``): the
    ``$(...)`` in the (single-quoted, so never parsed) text runs then.
    """
    _, bracket, subscript = name.partition("[")
    return bool(bracket) and any(mark in subscript for mark in "$`")


def assigned(
    spec: str, names: Iterable[Word], what: str, extra: Iterable[str] = ()
) -> Verdict:
    """Build the verdict of a command that assigns the variables ``names``.

    Args:
        spec: the spec id (``posix:read``).
        names: the words naming the variables, as written.
        what: the sentence subject (``read``).
        extra: more reasons that make the command ``dynamic``.

    Returns:
        A read verdict naming every variable in ``env_sets``; ``dynamic``
        when a name is not static, not a name, or steers later commands.
    """
    words = list(names)
    sets = tuple(w.text.split("[", 1)[0] for w in words)
    why = list(extra)
    computed = [w.text for w in words if not w.static]
    computed += [s for s in sets if not _NAME.fullmatch(s) and s not in computed]
    computed += [w.text for w in words if w.static and subscript_runs(w.text)]
    if computed:
        why.append(f"{what} assigns a variable named at run time ({computed[0]})")
    risky = [s for s in sets if dangerous_env(s)]
    if risky:
        why.append(f"{what} sets {', '.join(risky)}")
    reasons = tuple(why) or (f"{what} sets {', '.join(sets) or 'variables'}",)
    return Verdict(DYNAMIC if why else READ, spec, reasons, env_sets=sets)


def dir_writes(verdict: Verdict, words: Iterable[Word]) -> Verdict:
    """``export TMPDIR=/x``: later programs write into the directory it names."""
    targets = []
    for word in words:
        name, sep, value = word.text.partition("=")
        if sep and variable_kind(name) == "write-dir":
            targets.append(Word(value, word.static))
    if not targets:
        return verdict
    return Verdict(
        verdict.effects | WRITE,
        verdict.spec,
        (*verdict.reasons, "programs write into the directory it names"),
        tuple(targets),
        env_sets=verdict.env_sets,
    )


def declare(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``export X=1``, ``declare -n ref=X`` (ref names X), ``export -f f``."""
    flags = "".join(w.text[1:] for w in args if w.static and w.text[:1] in "-+")
    words = [w for w in args if not (w.static and w.text[:1] in "-+")]
    names = [Word(w.text.split("=", 1)[0], w.static) for w in words]
    extra = []
    if "n" in flags:  # a nameref: assigning the ref assigns its target
        names += [
            Word(w.text.split("=", 1)[1], w.static) for w in words if "=" in w.text
        ]
    if "f" in flags and (name == "export" or "x" in flags):
        extra.append(f"{name} exports functions: child shells run them by name")
    return dir_writes(assigned(entry.spec, names, name, extra), words)


def unset(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``unset X``: clearing a variable counts as setting it."""
    names = [w for w in args if not (w.static and w.text.startswith("-"))]
    return assigned(entry.spec, names, "unset")


def read(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``read [-a ARRAY] [NAME...]``; no name assigns REPLY."""
    pos, opts = operands(args, frozenset("-" + c for c in "adinNptu"))
    names = list(pos) or [Word("REPLY")]
    if "-a" in opts:
        names.append(Word(opts["-a"]))
    return assigned(entry.spec, names, "read")


def printf(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``printf -v NAME FORMAT``: assigns NAME instead of printing."""
    _, opts = operands(args[:2], frozenset({"-v"}))
    if not args or "-v" not in opts:
        return Verdict(READ, entry.spec, ("printf only reads",))
    first = args[1] if args[0].text == "-v" and len(args) > 1 else args[0]
    target = first if args[0].text == "-v" else Word(first.text[2:], first.static)
    return assigned(entry.spec, [target], "printf -v")


def mapfile(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``mapfile [-C CALLBACK] [ARRAY]``: the callback is evaluated as code."""
    pos, opts = operands(args, frozenset("-" + c for c in "dnOsuCc"))
    extra = [f"{name} -C evaluates a callback"] if "-C" in opts else []
    return assigned(entry.spec, pos[:1] or [Word("MAPFILE")], name, extra)


def getopts(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``getopts OPTSTRING NAME [ARGS]`` assigns NAME."""
    return assigned(entry.spec, args[1:2], "getopts")


def wait(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``wait -p NAME`` assigns NAME."""
    _, opts = operands(args, frozenset({"-p"}))
    if "-p" not in opts:
        return Verdict(READ, entry.spec, ("wait only waits",))
    return assigned(entry.spec, [Word(opts["-p"])], "wait -p")


def let(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``let X=1 Y++``: arithmetic that assigns."""
    names = [Word(n) for w in args for n in arithmetic_names(w.text)]
    names += [w for w in args if not w.static and w.text[:1] in "$`"]
    return assigned(entry.spec, names, "let")
