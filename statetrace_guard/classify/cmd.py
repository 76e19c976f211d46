"""cmd.exe command lines (``cmd /c "..."``): split, then classify each part.

The line is split on ``&``, ``&&``, ``||`` and ``|`` outside double quotes;
each part is split into words (double quotes removed, ``^`` escapes the next
character). ``%VAR%`` and ``!VAR!`` expand at run time, so a word holding
one is not static. Redirection ``>``/``>>`` to a file (not ``nul``) writes.
Each part is classified by the shared classifier, which looks cmd's
builtins up first, then Windows programs, then POSIX ones (the registry's
``cmd``, ``windows`` and ``posix`` namespaces).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from statetrace_guard.classify.model import ClassifyContext, Shell, SimpleCommand, Word
from statetrace_guard.levels import Effect

__all__ = ["classify_line", "split_line", "split_words"]

WordsClassifier = Callable[
    [Sequence[Word], ClassifyContext, Shell], list[SimpleCommand]
]
_EXPANSION = re.compile(r"%[^%\s]+%|![^!\s]+!|%~?\d")
_NUL = frozenset({"nul", "con", "&1", "&2", "/dev/null"})


def split_line(line: str) -> list[str]:
    """Split a cmd line on its command separators outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "^" and not quoted and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if not quoted and ch in "&|":
            parts.append("".join(current))
            current = []
            i += 2 if line[i + 1 : i + 2] == ch else 1
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def split_words(part: str) -> tuple[list[Word], list[str]]:
    """Split one command into words and the files it redirects output to."""
    words: list[Word] = []
    redirects: list[str] = []
    for raw in _tokens(part):
        if raw.startswith((">", "1>", "2>")) and raw.lstrip("12>") != raw:
            target = raw.lstrip("12>").strip()
            if target and target.lower() not in _NUL:
                redirects.append(target)
            continue
        text = raw.replace('"', "")
        words.append(Word(text, static=_EXPANSION.search(text) is None))
    return words, redirects


def _tokens(part: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    quoted = False
    it = iter(part)
    for ch in it:
        if ch == "^" and not quoted:
            current.append(next(it, ""))
            continue
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        if ch == ">" and not quoted and current and current[-1] not in "12>":
            tokens.append("".join(current))
            current = []
        current.append(ch)
    if current:
        tokens.append("".join(current))
    return _join_redirect_targets(tokens)


def _join_redirect_targets(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        if out and out[-1].rstrip(">").rstrip("12") == "" and out[-1].endswith(">"):
            out[-1] += token
        else:
            out.append(token)
    return out


def classify_line(
    line: str, ctx: ClassifyContext, classify_words: WordsClassifier
) -> list[SimpleCommand]:
    """Classify a cmd.exe command line; never raises on any string."""
    out: list[SimpleCommand] = []
    for part in split_line(line):
        words, redirects = split_words(part)
        if not words:
            continue
        found = classify_words(words, ctx, "cmd")
        if redirects and found:
            found[0] = _with_redirects(found[0], redirects)
        out.extend(found)
    return out


def _with_redirects(command: SimpleCommand, redirects: list[str]) -> SimpleCommand:
    return replace(
        command,
        effects=command.effects | {Effect.WRITE},
        redirects=(*command.redirects, *redirects),
    )
