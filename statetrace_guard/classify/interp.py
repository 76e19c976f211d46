"""Handlers for interpreters and the text tools with a program language.

Inline code (``python -c``, ``perl -e``, ``node -e``) and code read from
stdin are ``dynamic``; a script file is ``dynamic`` with ``script`` set so a
policy rule can name it. ``python -m MODULE`` is judged by the module's own
entry (``pip``, ``pytest``, ``json.tool``...). awk and sed programs are read
for the features that run commands or write files; everything else in them
only reads. Which options are inline code is each entry's data.
"""

from __future__ import annotations

import re
from dataclasses import replace

from statetrace_guard.classify.engine import Judge, options_of
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.paths import normalize_script_path
from statetrace_guard.classify.sedscan import scan_sed
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    INSTALL,
    WRITE,
    Verdict,
    dynamic,
    read,
    write,
)

__all__ = ["awk", "interpreter", "python", "script_verdict", "sed"]


def script_verdict(name: str, path: Word, ctx: ClassifyContext) -> Verdict:
    """Verdict for running the script file ``path`` (policy may name it)."""
    rel = normalize_script_path(path.text, ctx) if path.static else None
    return Verdict(
        DYNAMIC, "script", (f"{name} runs the script {path.text}",), script=rel
    )


def _version_only(entry: ProgramEntry, args: tuple[Word, ...]) -> bool:
    """Alone, a version or help flag only reads (no -r/-M preload rides along)."""
    return len(args) == 1 and args[0].static and args[0].text in entry.versions


def python(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``python [opts] (-c CODE | -m MOD | FILE | -) [args]``."""
    if _version_only(entry, args):
        return read(entry.spec, f"{name} {args[0].text} prints its version")
    inline = tuple(entry.data.get("inline_options", ()))
    valued = frozenset(entry.options_of("value")) | {"-m"}
    it = iter(enumerate(args))
    for i, word in it:
        text = word.text
        if not word.static:
            return dynamic(entry.spec, "interpreter argument not static")
        if text == "-" or text in inline or _bundled(text, inline, valued):
            return dynamic(entry.spec, f"{name} runs inline or stdin code")
        if text == "-m" or (text.startswith("-m") and not text.startswith("--")):
            module = text[2:] or (args[i + 1].text if i + 1 < len(args) else "")
            rest = args[i + 1 :] if text[2:] else args[i + 2 :]
            isolated = any(_isolates(entry, w.text) for w in args[:i])
            return _module(entry, module, rest, ctx, judge, isolated=isolated)
        if text in valued:
            next(it, None)
            continue
        if not text.startswith("-"):
            return script_verdict(name, word, ctx)
    return dynamic(entry.spec, f"{name} reads its program from stdin")


def _bundled(text: str, inline: tuple[str, ...], valued: frozenset[str]) -> bool:
    """``-Ic``, ``-Bc CODE``: an inline-code flag inside a bundle of short flags."""
    if not text.startswith("-") or text.startswith("--"):
        return False
    letters = {flag[1:] for flag in inline if len(flag) == 2}  # noqa: PLR2004 - "-c"
    for letter in text[1:]:
        if letter in letters:
            return True
        if "-" + letter in valued:
            return False  # the rest of the bundle is this option's value
    return False


def _isolates(entry: ProgramEntry, flag: str) -> bool:
    """``-I`` (isolated) or ``-P`` (3.11+): the cwd is not put on sys.path."""
    letters = set(entry.data.get("isolating_flags", ()))
    return (
        flag.startswith("-")
        and not flag.startswith("--")
        and bool(set(flag[1:]) & letters)
    )


def _module(
    _entry: ProgramEntry,
    module: str,
    rest: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
    *,
    isolated: bool,
) -> Verdict:
    """``python -m MODULE ARGS``: the module's entry judges its arguments."""
    from statetrace_guard.classify.registry import (  # noqa: PLC0415 - cycle-free lazy
        builtin_knowledge,
    )

    knowledge = ctx.knowledge or builtin_knowledge()
    found = knowledge.programs("python", module) or knowledge.programs("posix", module)
    if not found:
        return dynamic(f"posix:python-m-{module}", f"-m {module} runs code")
    verdict = judge(found[0], module, rest, ctx)
    return _unshadowed(verdict, module, isolated=isolated)


def _unshadowed(verdict: Verdict, module: str, *, isolated: bool) -> Verdict:
    """``python -m json.tool`` imports ``json`` from the cwd first.

    NOTE(python): with ``-m`` the current directory leads ``sys.path``, so a
    ``json.py`` or ``pip/`` the agent wrote (an L1 write) runs as that module:
    a read-only module is then project code. ``-I``/``-P`` turn that off.
    """
    if isolated or verdict.effects & (DYNAMIC | INSTALL):
        return verdict
    top = module.split(".", 1)[0]
    why = f"-m {module} imports {top} from the current directory first"
    return replace(
        verdict,
        effects=verdict.effects | DYNAMIC,
        reasons=(*verdict.reasons, why),
        hint=f"python3 -I -m {module} (isolated: the cwd is not searched)",
    )


def interpreter(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``perl -e``, ``node -e``, ``ruby FILE``: inline code or a script file."""
    if _version_only(entry, args):
        return read(entry.spec, f"{name} {args[0].text} prints its version")
    inline = tuple(entry.data.get("inline_options", ()))
    for word in args:
        text = word.text
        if not word.static:
            return dynamic(entry.spec, "interpreter argument not static")
        short = [f for f in inline if len(f) == 2]  # noqa: PLR2004 - "-e" glued: -e'code'
        if text in inline or any(text.startswith(f) for f in short):
            return dynamic(entry.spec, f"{name} {text} runs inline code")
        if text == "-":
            break
        if not text.startswith("-"):
            return script_verdict(name, word, ctx)
    return dynamic(entry.spec, f"{name} reads its program from stdin")


# -- awk ------------------------------------------------------------------------

_AWK_DYNAMIC = re.compile(
    r"\bsystem\s*\(|\|\s*&|\|\s*getline|@load|/inet|\bgetline\s*<\s*[^\"\s]"
)


def awk(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``awk [opts] 'PROGRAM' [files]``: the program decides."""
    parsed = options_of(entry, args, stop_at_operand=True)
    if parsed.problems or any(kind == "code" for kind, _, _ in parsed.options):
        return dynamic(entry.spec, "awk loads program code or an option is unknown")
    if not parsed.operands:
        return read(entry.spec, "awk without a program")
    return _awk_program(entry.spec, parsed.operands[0])


def _awk_program(spec: str, program: Word) -> Verdict:
    if not program.static:
        return dynamic(spec, "awk program is not static")
    text = program.text
    if _AWK_DYNAMIC.search(text):
        return dynamic(spec, "awk program runs commands or opens sockets")
    targets = _awk_redirects(text)
    if targets is None:
        return dynamic(spec, "awk prints to a computed file name or a command")
    if not targets:
        return read(spec, "awk program only reads")
    return write(spec, [Word(t) for t in targets], "awk print > file")


def _awk_redirects(text: str) -> list[str] | None:
    """The files ``print``/``printf`` redirect to; ``None`` when computed or a pipe.

    NOTE(awk): in a print statement an unparenthesised ``>`` is a
    redirection (``print $1 > 5`` writes the file ``5``); inside parentheses
    or a string it is a comparison or text. The target must be one string
    literal ending the statement (``print > "a" "b"`` concatenates: computed).
    """
    tokens = _awk_tokens(text)
    targets: list[str] = []
    in_print = False
    depth = 0
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "word" and value in ("print", "printf"):
            in_print, depth = True, 0
        elif kind == "op" and value in ";}\n":
            in_print = False
        elif kind == "op" and value == "(":
            depth += 1
        elif kind == "op" and value == ")":
            depth -= 1
        elif in_print and depth <= 0 and kind == "op" and value in (">", ">>", "|"):
            if value == "|":
                return None
            target, i = _awk_target(tokens, i + 1)
            if target is None:
                return None
            targets.append(target)
            in_print = False
            continue
        i += 1
    return targets


def _awk_target(tokens: list[tuple[str, str]], i: int) -> tuple[str | None, int]:
    """One string literal, then the end of the statement: a static target."""
    if i >= len(tokens) or tokens[i][0] != "string":
        return None, i
    value = tokens[i][1]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ("op", ";")
    if nxt[0] != "op" or nxt[1] not in ";}\n":
        return None, i
    return value, i + 1


_AWK_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string
    r"|>>|[><|;{}()\n]"  # operators that matter
    r"|[A-Za-z_][A-Za-z0-9_]*"  # a word
    r"|#[^\n]*"  # a comment
    r"|\S"  # anything else, one character
)


def _awk_tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for match in _AWK_TOKEN.finditer(text):
        token = match.group(0)
        if token.startswith('"'):
            out.append(("string", token[1:-1]))
        elif token.startswith("#"):
            continue
        elif token[0].isalpha() or token[0] == "_":
            out.append(("word", token))
        elif token in (">>", ">", "<", "|", ";", "{", "}", "(", ")", "\n"):
            out.append(("op", token))
        else:
            out.append(("other", token))
    return out


# -- sed --------------------------------------------------------------------------


def sed(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``sed [opts] [-e SCRIPT]... [SCRIPT] [files]``: scripts are scanned."""
    parsed = options_of(entry, args)
    if parsed.problems:
        return dynamic(entry.spec, "a sed argument may expand to an option")
    if any(kind == "code" for kind, _, _ in parsed.options):
        return dynamic(entry.spec, "sed -f reads a program file")
    scripts = [
        v
        for kind, spelling, v in parsed.options
        if spelling in ("-e", "--expression") and v is not None
    ]
    files = list(parsed.operands)
    if not scripts and files:
        scripts = [files.pop(0)]
    in_place = any(
        spelling in ("-i", "--in-place") for _, spelling, _ in parsed.options
    )
    if any(not w.static for w in scripts):
        return dynamic(entry.spec, "sed program is not static")
    return _sed_verdict(entry.spec, [w.text for w in scripts], files, in_place=in_place)


def _sed_verdict(
    spec: str, scripts: list[str], files: list[Word], *, in_place: bool
) -> Verdict:
    found = [scan_sed(s) for s in scripts]
    if any(f is None for f in found):
        return dynamic(spec, "sed program runs commands (e) or is unreadable")
    written = [Word(p) for f in found if f is not None for p in f]
    if in_place:
        written.extend(files or [Word(".")])
    if written:
        return Verdict(
            WRITE,
            spec,
            ("sed writes files",),
            tuple(written),
            hint="use sed -n '...p' to read without writing",
        )
    return read(spec, "sed prints to stdout")
