"""Specs for interpreters and the text tools with a program language.

Inline code (``python -c``, ``perl -e``, ``node -e``...) and code read from
stdin are ``dynamic``; a script file is ``dynamic`` with ``script`` set so a
policy rule can name it. awk and sed programs are scanned for the features
that run commands or write files; everything else in them is read-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.paths import normalize_script_path
from statetrace_guard.classify.sedscan import scan_sed
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    INSTALL,
    NETWORK,
    READ,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
    read,
    write,
)
from statetrace_guard.levels import Effect

__all__ = ["INTERP_SPECS", "script_verdict"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]

_INLINE = {
    "python": ("-c",),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "node": ("-e", "-p", "--eval", "--print"),
    "php": ("-r", "-B", "-R", "-E", "-F"),
    "lua": ("-e",),
    "rscript": ("-e",),
    "osascript": ("-e",),
    "tclsh": (),
    "deno": ("eval",),
    "bun": ("-e", "--eval", "-p"),
    "pwsh": (),
    "java": (),
    "jshell": (),
}
_VERSION = frozenset({"-V", "--version", "-v", "-h", "--help", "-VV", "version"})
_PY_VALUED = frozenset({"-W", "-X", "--check-hash-based-pycs"})
# python -m MODULE: what each known module does.
_PY_MODULES: dict[str, tuple[frozenset[Effect], str]] = {
    "pip": (INSTALL, "pip"),
    "http.server": (NETWORK, "python -m http.server serves the network"),
    "json.tool": (READ, "json.tool pretty-prints"),
    "venv": (WRITE, "venv creates an environment"),
    "pytest": (DYNAMIC, "pytest runs project code"),
    "unittest": (DYNAMIC, "unittest runs project code"),
}
_AWK_DYNAMIC = re.compile(
    r"\bsystem\s*\(|\|\s*&|\|\s*getline|\|\s*\"|\|\s*[a-zA-Z_$]|@load|/inet"
)
_AWK_PRINT_TO = re.compile(r"\bprintf?\b[^;}\n]*?>>?\s*(\"[^\"]*\"|[^\s;}]+)")
_AWK_VALUED = frozenset(
    {
        "-F",
        "-v",
        "-f",
        "--field-separator",
        "--assign",
        "--file",
        "-E",
        "--exec",
        "-i",
        "--include",
        "-l",
        "--load",
    }
)


def script_verdict(name: str, path: Word, ctx: ClassifyContext) -> Verdict:
    """Verdict for running the script file ``path`` (policy may name it)."""
    rel = normalize_script_path(path.text, ctx) if path.static else None
    spec = "script"
    reason = f"{name} runs the script {path.text}"
    return Verdict(DYNAMIC, spec, (reason,), script=rel)


def _family(name: str) -> str:
    base = name.lower()
    for fam in ("python", "pypy", "perl", "ruby", "node", "php", "lua"):
        if base.startswith(fam):
            return "python" if fam == "pypy" else fam
    return base


def _python(name: str, args: tuple[Word, ...], ctx: ClassifyContext) -> Verdict:
    it = iter(enumerate(args))
    for i, word in it:
        text = word.text
        if not word.static:
            return dynamic(f"posix:{name}", "interpreter argument not static")
        if text in ("-c", "-") or (text.startswith("-") and "c" in text[1:2]):
            return dynamic(f"posix:{name}", f"{name} runs inline or stdin code")
        if text == "-m" or text.startswith("-m"):
            module = text[2:] or (args[i + 1].text if i + 1 < len(args) else "")
            rest = args[i + 1 :] if text[2:] else args[i + 2 :]
            isolated = any(_isolates(w.text) for w in args[:i])
            return _unshadowed(_py_module(name, module, rest), module, isolated)
        if text in _VERSION and len(args) == 1:  # alone: no -r/-M preload rides along
            return read(f"posix:{name}", "version or help")
        if text in _PY_VALUED:
            next(it, None)
            continue
        if not text.startswith("-"):
            return script_verdict(name, word, ctx)
    return dynamic(f"posix:{name}", f"{name} reads its program from stdin")


def _isolates(flag: str) -> bool:
    """``-I`` (isolated) or ``-P`` (3.11+): the cwd is not put on sys.path."""
    return (
        flag.startswith("-")
        and not flag.startswith("--")
        and bool(set(flag[1:]) & {"I", "P"})
    )


def _unshadowed(verdict: Verdict, module: str, isolated: bool) -> Verdict:
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


def _py_module(_name: str, module: str, rest: tuple[Word, ...]) -> Verdict:
    effects, reason = _PY_MODULES.get(module, (DYNAMIC, f"-m {module} runs code"))
    if module == "pip":
        sub = rest[0].text if rest else ""
        if sub in ("list", "show", "freeze", "check", "--version", "help", ""):
            return read("posix:pip", "pip listing")
        return Verdict(INSTALL, "posix:pip", (f"pip {sub} installs",))
    spec = "posix:pytest" if module == "pytest" else f"posix:python-m-{module}"
    return Verdict(effects, spec, (reason,))


def _generic(name: str, args: tuple[Word, ...], ctx: ClassifyContext) -> Verdict:
    inline = _INLINE.get(_family(name), ())
    for word in args:
        text = word.text
        if not word.static:
            return dynamic(f"posix:{name}", "interpreter argument not static")
        if text in inline or any(text.startswith(f) for f in inline if len(f) == 2):  # noqa: PLR2004
            return dynamic(f"posix:{name}", f"{name} {text} runs inline code")
        if text in _VERSION and len(args) == 1:  # alone: no -r/-M preload rides along
            return read(f"posix:{name}", "version or help")
        if text == "-":
            break
        if not text.startswith("-"):
            return script_verdict(name, word, ctx)
    return dynamic(f"posix:{name}", f"{name} reads its program from stdin")


def _awk(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    it = iter(args)
    for word in it:
        if may_be_option(word):
            return dynamic("posix:awk", "an awk argument may expand to an option")
        flag = word.text.split("=", 1)[0] if word.text.startswith("--") else word.text
        if flag in ("-f", "--file", "-E", "--exec", "-l", "--load", "-i", "--include"):
            return dynamic("posix:awk", f"awk {flag} loads program code")
        if flag in _AWK_VALUED and "=" not in word.text:
            next(it, None)
        elif not word.text.startswith("-") or word.text == "-":
            return _awk_program(word)
    return read("posix:awk", "awk without a program")


def _awk_program(program: Word) -> Verdict:
    if not program.static:
        return dynamic("posix:awk", "awk program is not static")
    text = program.text
    if _AWK_DYNAMIC.search(text):
        return dynamic("posix:awk", "awk program runs commands or opens sockets")
    targets = _AWK_PRINT_TO.findall(text)
    if not targets:
        return read("posix:awk", "awk program only reads")
    if any(not t.startswith('"') for t in targets):
        return dynamic("posix:awk", "awk prints to a computed file name")
    return write("posix:awk", [Word(t.strip('"')) for t in targets], "awk print > file")


def _sed(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    scripts: list[str] = []
    files: list[Word] = []
    in_place = False
    it = iter(args)
    for word in it:
        text = word.text
        if may_be_option(word) or (text.startswith("-") and not word.static):
            return dynamic("posix:sed", "a sed argument may expand to an option")
        if text in ("-e", "--expression"):
            scripts.append(next(it, Word("")).text)
        elif text.startswith("--expression="):
            scripts.append(text.partition("=")[2])
        elif text in ("-f", "--file") or text.startswith("--file="):
            return dynamic("posix:sed", "sed -f reads a program file")
        elif text.startswith(("-i", "--in-place")):
            in_place = True
        elif text.startswith("-") and text != "-":
            in_place = in_place or ("i" in text[1:] and not text.startswith("--"))
            if "e" in text[1:] and not text.startswith("--"):
                scripts.append(next(it, Word("")).text)
        elif not scripts and not files:
            scripts.append(text)
        else:
            files.append(word)
    return _sed_verdict(scripts, files, in_place)


def _sed_verdict(scripts: list[str], files: list[Word], in_place: bool) -> Verdict:
    found = [scan_sed(s) for s in scripts]
    if any(f is None for f in found):
        return dynamic("posix:sed", "sed program runs commands (e) or is unreadable")
    written = [Word(p) for f in found if f is not None for p in f]
    if in_place:
        written.extend(files)
    if written:
        return Verdict(
            WRITE,
            "posix:sed",
            ("sed writes files",),
            tuple(written),
            hint="use sed -n '...p' to read without writing",
        )
    return read("posix:sed", "sed prints to stdout")


INTERP_SPECS: dict[str, Spec] = {
    **dict.fromkeys(("python", "python2", "python3", "pypy", "pypy3", "py"), _python),
    **dict.fromkeys(
        (
            "perl",
            "ruby",
            "node",
            "nodejs",
            "php",
            "lua",
            "luajit",
            "Rscript",
            "osascript",
            "tclsh",
            "wish",
            "irb",
            "expect",
            "jshell",
            "groovy",
            "scala",
            "julia",
            "guile",
            "racket",
            "sbcl",
            "ghci",
            "runghc",
            "elixir",
            "erl",
            "swift",
            "dotnet-script",
            "ts-node",
            "tsx",
            "deno",
            "bun",
        ),
        _generic,
    ),
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk", "busybox-awk"), _awk),
    **dict.fromkeys(("sed", "gsed"), _sed),
}
