"""Specs for tools that write files named in their arguments.

Each returns the written paths as words so the policy can place them
(workspace, temp, guard-owned, outside). Options that take a value are
listed per tool so their values are not mistaken for paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    Verdict,
    dynamic,
    may_be_option,
    read,
    write,
)

__all__ = ["FILE_SPECS", "operands"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]
_DOT = Word(".")


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


def _unsure(args: tuple[Word, ...]) -> bool:
    """Tell whether some argument may expand to an unseen option."""
    return any(may_be_option(w) for w in args)


def _all_operands(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, _ = operands(args)
    return write(f"posix:{name}", pos or [_DOT], f"{name} modifies its operands")


def _last_operand(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args, frozenset({"-t", "--target-directory", "-S", "-m"}))
    target = opts.get("-t") or opts.get("--target-directory")
    if target:
        return write(f"posix:{name}", [Word(target)], f"{name} writes into {target}")
    dests = pos[-1:] if name != "mv" else pos
    return write(f"posix:{name}", dests or [_DOT], f"{name} writes its destination")


def _after_first(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args)
    files = pos if any(o.startswith("--reference") for o in opts) else pos[1:]
    return write(f"posix:{name}", files or [_DOT], f"{name} changes file metadata")


def _truncate(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, _ = operands(args, frozenset({"-s", "-r", "--size", "--reference"}))
    return write(f"posix:{name}", pos or [_DOT], "truncate resizes its operands")


def _dd(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    outs = [Word(w.text[3:], w.static) for w in args if w.text.startswith("of=")]
    if outs:
        return write("posix:dd", outs, "dd writes its of= file")
    if _unsure(args):
        return dynamic("posix:dd", "dd operand not static")
    return read("posix:dd", "dd without of= writes to stdout")


def _tee(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, _ = operands(args)
    if not pos:
        return read("posix:tee", "tee without files copies stdin to stdout")
    return write("posix:tee", pos, "tee writes its files")


# Options of sort (and kin) whose value must not be read as more flags.
_SORT_VALUED = frozenset({"-k", "-t", "-S", "-T", "--key", "--field-separator",
                          "--buffer-size", "--temporary-directory"})  # fmt: skip


def _with_output_opt(
    short: str, long: str
) -> Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]:
    """Build a spec for a read tool whose ``short``/``long`` option writes."""

    def spec(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
        _, opts = operands(args, _SORT_VALUED | {short, long})
        target = opts.get(short) or opts.get(long)
        if any(key.startswith("--compress-program") for key in opts):
            return dynamic(f"posix:{name}", "--compress-program runs a program")
        if target:
            return write(f"posix:{name}", [Word(target)], f"{name} writes {target}")
        if _unsure(args):
            return dynamic(f"posix:{name}", "an argument may expand to an option")
        return read(f"posix:{name}")

    return spec


def _uniq(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, _ = operands(args, frozenset({"-f", "-s", "-w"}))
    if len(pos) >= 2:  # noqa: PLR2004 - uniq INPUT OUTPUT
        return write("posix:uniq", pos[1:2], "uniq writes its second operand")
    return read("posix:uniq")


def _xxd(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, _ = operands(args, frozenset({"-c", "-g", "-l", "-s", "-o", "-n"}))
    if len(pos) >= 2:  # noqa: PLR2004 - xxd INFILE OUTFILE
        return write("posix:xxd", pos[1:2], "xxd writes its second operand")
    return read("posix:xxd")


def _compress(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    flags = "".join(w.text for w in args if w.text.startswith("-"))
    readonly = ("c", "l", "t", "h", "V")
    if any(f in flags for f in ("--stdout", "--list", "--test", "--help")) or any(
        f in flags.replace("--", "") for f in readonly
    ):
        return read(f"posix:{name}", f"{name} to stdout or listing")
    pos, _ = operands(args, frozenset({"-S", "--suffix"}))
    return write(f"posix:{name}", pos or [_DOT], f"{name} replaces its operands")


def _unzip(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    _, opts = operands(args, frozenset({"-d", "-x", "-P"}))
    if any(o in opts for o in ("-l", "-t", "-v", "-p", "-Z", "-z")):
        return read("posix:unzip", "unzip lists or prints")
    return write("posix:unzip", [Word(opts.get("-d") or ".")], "unzip extracts")


def _zip(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args, frozenset({"-b", "-n", "-t", "-x", "-i", "-P"}))
    if "-T" in opts or "--unzip-command" in opts or "-TT" in opts:
        return dynamic("posix:zip", "zip -T/-TT runs a test command")
    return write("posix:zip", pos[:1] or [_DOT], "zip writes its archive")


def _patch(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    _, opts = operands(args, frozenset({"-d", "-o", "-i", "-p", "-r", "-B"}))
    if "--dry-run" in opts:
        return read("posix:patch", "patch --dry-run")
    where = opts.get("-o") or opts.get("-d") or "."
    return write("posix:patch", [Word(where)], "patch edits files")


def _split(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args, frozenset({"-b", "-l", "-n", "-a", "-C", "-t"}))
    if any(o.startswith("--filter") for o in opts):
        return dynamic("posix:split", "split --filter runs a shell command")
    prefix = pos[1:2] or [Word("x")]
    return write(f"posix:{name}", prefix, f"{name} writes pieces")


FILE_SPECS: dict[str, Spec] = {
    **dict.fromkeys(
        ("rm", "rmdir", "unlink", "shred", "mkdir", "touch"), _all_operands
    ),
    **dict.fromkeys(("mkfifo", "mknod", "chattr", "setfacl"), _all_operands),
    **dict.fromkeys(("cp", "mv", "ln", "install", "rename"), _last_operand),
    **dict.fromkeys(("chmod", "chown", "chgrp"), _after_first),
    "truncate": _truncate,
    "dd": _dd,
    "tee": _tee,
    "sort": _with_output_opt("-o", "--output"),
    "tree": _with_output_opt("-o", ""),
    "shuf": _with_output_opt("-o", "--output"),
    "sdiff": _with_output_opt("-o", "--output"),
    "uniq": _uniq,
    "xxd": _xxd,
    **dict.fromkeys(("gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz"), _compress),
    **dict.fromkeys(("zstd", "unzstd", "lz4", "compress"), _compress),
    "unzip": _unzip,
    "zip": _zip,
    "patch": _patch,
    "split": _split,
    "csplit": _split,
}
