"""Argument helpers shared by handlers, and the ``dd`` handler.

``operands`` splits words the way getopt does for handlers that need the
operands and option values of a few options (the option engine in
``engine.py`` does the full job for registry entries). ``dd`` has its own
grammar (``if=``, ``of=``), so it is a handler.
"""

from __future__ import annotations

from collections.abc import Iterator

from statetrace_guard.classify.engine import Judge, options_of, verdict_of
from statetrace_guard.classify.knowledge import VALUED, ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
    read,
    write,
)

__all__ = ["dd", "operands", "tar"]


def operands(
    args: tuple[Word, ...], valued: frozenset[str] = frozenset()
) -> tuple[list[Word], dict[str, str]]:
    """Split args into positional operands and ``{option: value}``.

    ``valued`` names the short and long options that take a value (the next
    word, or glued: ``-t/etc``, ``--output=f``); ``--`` ends options. Short
    bundles are split as getopt does: ``-rt/etc`` is ``-r`` and ``-t /etc``.
    """
    pos: list[Word] = []
    opts: dict[str, str] = {}
    it = iter(args)
    for word in it:
        text = word.text
        if text == "--":
            pos.extend(it)
            break
        if not (text.startswith("-") and text != "-" and word.static):
            pos.append(word)
        elif text.startswith("--"):
            name, _, value = text.partition("=")
            if name in valued and not value:
                value = next(it, Word("")).text
            opts[name] = value
        else:
            _short_bundle(text, valued, opts, it)
    return pos, opts


def _short_bundle(
    text: str, valued: frozenset[str], opts: dict[str, str], it: Iterator[Word]
) -> None:
    """Record the flags of one ``-abc`` bundle; a valued flag takes the rest."""
    opts[text] = ""  # the whole bundle too, for specs that test exact spellings
    for i in range(1, len(text)):
        flag = "-" + text[i]
        if flag in valued:
            opts[flag] = text[i + 1 :] or next(it, Word("")).text
            return
        opts.setdefault(flag, "")


def dd(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``dd if=IN of=OUT``: writes its ``of=`` file, else stdout."""
    outs = [Word(w.text[3:], w.static) for w in args if w.text.startswith("of=")]
    if outs:
        return write(entry.spec, outs, "dd writes its of= file")
    if any(may_be_option(w) for w in args):
        return dynamic(entry.spec, "dd operand not static")
    return read(entry.spec, "dd without of= writes to stdout")


def tar(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``tar [-]MODE[opts] [-f ARCHIVE] [-C DIR] [files]``: the mode decides.

    Extracting writes into ``-C`` (or here) unless ``-O`` sends the files to
    stdout; creating, appending, updating or deleting writes the archive.
    The entry's exec, shell and code options (``-I``, ``--to-command``,
    ``--checkpoint-action``) run programs; ``--index-file`` writes.
    """
    parsed = options_of(entry, _old_style(entry, args))
    own = verdict_of(entry, parsed, ctx)
    given = {spelling: value for _, spelling, value in parsed.options}
    archive = given.get("-f") or given.get("--file")
    if archive is not None and not archive.static:
        why = f"{name} archive named at run time (host:path runs rsh)"
        return Verdict(DYNAMIC, entry.spec, (why,))
    if archive is not None and _remote(archive) and "--force-local" not in given:
        return Verdict(DYNAMIC, entry.spec, (f"{name} archive on a remote host (rsh)",))
    writes = list(own.writes)
    reason = f"{name} lists an archive"
    extracts = _any(entry, "extract_options", given)
    if extracts and not _any(entry, "stdout_options", given):
        writes.append(given.get("-C") or given.get("--directory") or Word("."))
        reason = f"{name} extracts files"
    elif _any(entry, "archive_writing_options", given):
        writes.append(archive or Word("-"))
        reason = f"{name} writes an archive"
    effects = own.effects | WRITE if writes else own.effects
    return Verdict(
        effects,
        entry.spec,
        (reason, *own.reasons[1:]),
        tuple(writes),
        own.urls,
        own.script,
        own.nested,
        own.scripts,
    )


def _old_style(entry: ProgramEntry, args: tuple[Word, ...]) -> tuple[Word, ...]:
    """``tar xzf a.tgz``, ``tar cfC a.tar dir``: a first word without a dash.

    Each letter is an option; the valued ones take the following words in
    order (old-style tar), not the rest of the bundle.
    """
    if not (args and args[0].static and args[0].text and args[0].text[0] != "-"):
        return args
    out: list[Word] = []
    rest = list(args[1:])
    for letter in args[0].text:
        out.append(Word("-" + letter))
        if entry.kinds.get("-" + letter) in VALUED and rest:
            out.append(rest.pop(0))
    return (*out, *rest)


def _any(entry: ProgramEntry, key: str, given: dict[str, Word | None]) -> bool:
    return any(spelling in given for spelling in entry.data.get(key, ()))


def _remote(archive: Word) -> bool:
    """``host:path`` (before any slash) is a remote archive reached by rsh."""
    return ":" in archive.text.split("/", 1)[0]
