"""Read-only tools with an option that runs a program.

``fd -x CMD`` runs CMD per match (classified like ``find -exec``);
``bat``/``ag``/``ack --pager CMD``, ``cloc --vcs CMD`` and
``pylint --init-hook CODE`` run what they are given. Without those options
they only read.
"""

from __future__ import annotations

from collections.abc import Callable

from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    READ,
    Verdict,
    dynamic,
    may_be_option,
    read,
)

__all__ = ["READ_TOOL_SPECS"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]

_MATCH = Word("{}", static=False)  # a path fd found: anywhere under its roots
_FD_EXEC = frozenset({"-x", "--exec", "-X", "--exec-batch"})


def _fd(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    """``fd PATTERN -x CMD ARGS ;``: CMD runs once per match (or batched)."""
    for i, word in enumerate(args):
        if may_be_option(word):
            return dynamic(f"posix:{name}", f"an {name} argument may expand to -x")
        if word.text in _FD_EXEC:
            end = next(
                (j for j in range(i + 1, len(args)) if args[j].text == ";"), len(args)
            )
            command = tuple(_placeholder(w) for w in args[i + 1 : end])
            if command and all(w.static for w in command[1:]):
                command = (*command, _MATCH)  # fd appends the match itself
            if not command:
                return dynamic(f"posix:{name}", f"{name} {word.text} without a command")
            reason = f"{name} {word.text} runs a command per match"
            return Verdict(READ, f"posix:{name}", (reason,), nested=(command,))
    return read(f"posix:{name}", f"{name} finds files")


def _placeholder(word: Word) -> Word:
    """``{}``, ``{/}``, ``{.}``: a matched path, known only at run time."""
    return Word(word.text, static=False) if "{" in word.text else word


def _runs_option(*options: str) -> Spec:
    """A read-only tool whose ``options`` name a program or code to run."""

    def spec(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
        for word in args:
            flag = word.text.split("=", 1)[0]
            if may_be_option(word) or flag in options:
                return dynamic(f"posix:{name}", f"{name} {flag} runs a program")
        return read(f"posix:{name}", f"{name} only reads")

    return spec


READ_TOOL_SPECS: dict[str, Spec] = {
    "fd": _fd,
    "fdfind": _fd,
    "bat": _runs_option("--pager"),
    "batcat": _runs_option("--pager"),
    "ag": _runs_option("--pager"),
    "ack": _runs_option("--pager", "--output"),
    "cloc": _runs_option("--vcs", "--script-lang"),
    "pylint": _runs_option("--init-hook", "--load-plugins", "--rcfile"),
}
