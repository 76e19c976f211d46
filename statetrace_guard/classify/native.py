"""The table of built-in specs for POSIX programs, and the read-only tools.

``SPECS`` maps a canonical program name to a spec function
``(name, args, ctx) -> Verdict``. Read-only tools are split in two: those
with no option that writes or runs anything (``PLAIN_READ``), and those with
such options, which get an argument-aware spec here. Programs absent from
the table are ``dynamic`` with spec ``unknown``: fail closed.

NOTE(bash): pagers (``less``, ``more``, ``man``) are read-only here: under
the guard their stdin is not a terminal, so their interactive shell escapes
(``!cmd``) cannot be typed; the startup-command forms that do run without
a terminal (``less +!cmd``, ``man -P cmd``, ``LESSOPEN``) are ``dynamic``.
Editors (``vi``, ``vim``, ``nano``, ``emacs``, ``ed``) are ``dynamic``: they
write files and run commands from their arguments (``vim -c '!cmd'``).
"""

from __future__ import annotations

from collections.abc import Callable

from statetrace_guard.classify.assigns import ASSIGN_SPECS
from statetrace_guard.classify.fileops import FILE_SPECS, operands
from statetrace_guard.classify.git import git_spec
from statetrace_guard.classify.interp import INTERP_SPECS, script_verdict
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.net import NET_SPECS
from statetrace_guard.classify.readtools import READ_TOOL_SPECS
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
    read,
    write,
)
from statetrace_guard.classify.wrappers import WRAPPER_SPECS

__all__ = ["PLAIN_READ", "SPECS", "lookup"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]

PLAIN_READ = frozenset(
    {
        "cat",
        "ls",
        "grep",
        "egrep",
        "fgrep",
        "zgrep",
        "zcat",
        "bzcat",
        "xzcat",
        "head",
        "tail",
        "wc",
        "cut",
        "tr",
        "diff",
        "cmp",
        "comm",
        "stat",
        "file",
        "which",
        "whereis",
        "echo",
        "printf",
        "pwd",
        "id",
        "whoami",
        "uname",
        "ps",
        "du",
        "df",
        "basename",
        "dirname",
        "realpath",
        "readlink",
        "nl",
        "od",
        "hexdump",
        "strings",
        "md5sum",
        "sha1sum",
        "sha224sum",
        "sha256sum",
        "sha384sum",
        "sha512sum",
        "b2sum",
        "cksum",
        "sum",
        "base64",
        "base32",
        "column",
        "fold",
        "fmt",
        "expand",
        "unexpand",
        "paste",
        "join",
        "rev",
        "tac",
        "seq",
        "true",
        "false",
        "sleep",
        "test",
        "[",
        "uptime",
        "free",
        "printenv",
        "locale",
        "nproc",
        "getconf",
        "tty",
        "groups",
        "lscpu",
        "lsblk",
        "numfmt",
        "look",
        "jq",
        "cd",
        "pushd",
        "popd",
        "type",
        "shellcheck",
        "wait",
        "exit",
        "return",
        "set",
        "shopt",
        "unset",
        "read",
        ":",
        "alias",
        "unalias",
        "getopts",
        "shift",
        "break",
        "continue",
        "umask",
        "jobs",
        "dirs",
        "help",
        "let",
        "mapfile",
        "readarray",
        "times",
        "logname",
        "arch",
        "tput",
        "clear",
        "pstree",
        "pgrep",
        "who",
        "w",
        "last",
        "cal",
        "expr",
        "bc",
        "lsof",
        "pidof",
        "env-print",
        "fd",
        "fdfind",
        "ag",
        "ack",
        "tokei",
        "cloc",
        "nm",
        "objdump",
        "readelf",
        "size",
        "sha",
        "jless",
        "bat",
        "batcat",
        "exa",
        "eza",
        "lsattr",
        "getfacl",
        "namei",
        "findmnt",
        "mount-list",
        "ulimit",
        "vmstat",
        "iostat",
        "top",
        "htop",
        "ss",
        "netstat",
        "ip-show",
        "flake8",
        "pylint",
        "pyflakes",
        "pycodestyle",
        "mdl",
        "yamllint",
        "hadolint",
        "tsc-check",
        "sort-check",
        "zless",
        "zmore",
        "diff3",
        "colordiff",
        "dircolors",
        "stty",
        "tabs",
        "basenc",
        "factor",
        "users",
        "hostid",
        "mesg",
    }
)
_BUILD_RUNNERS = (
    "make",
    "gmake",
    "cmake",
    "ninja",
    "tox",
    "nox",
    "py.test",
    "jest",
    "vitest",
    "mocha",
    "gradle",
    "gradlew",
    "mvn",
    "ant",
    "bazel",
    "meson",
    "just",
    "task",
    "rake",
    "invoke",
    "doit",
    "scons",
    "ctest",
    "behave",
    "nosetests",
    "trial",
    "eslint",
    "tsc",
    "webpack",
    "vite",
    "rollup",
    "esbuild",
    "sbt",
    "lein",
    "mix",
    "rebar3",
    "dotnet",
    "msbuild",
    "xcodebuild",
    "swift-build",
    "pre-commit",
)
_EDITORS = (
    "vi",
    "vim",
    "nvim",
    "view",
    "vimdiff",
    "nano",
    "pico",
    "emacs",
    "ed",
    "ex",
    "code",
    "joe",
    "micro",
    "mcedit",
    "kak",
    "hx",
)
_SHELL_LEVEL = (
    "eval",
    "enable",
    "fc",
    "coproc",
    "ldd",
    "dc",
    "socket",
    "trap",
    "complete",
    "compgen",
    "bind",
)


def _less(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    for word in args:
        text = word.text
        if text.startswith("+") or may_be_option(word):
            return dynamic(f"posix:{name}", f"{name} {text} runs pager commands")
        if text.startswith(("-o", "-O", "--log-file", "--LOG-FILE")):
            return write(f"posix:{name}", [], f"{name} {text} writes a log file")
    return read(f"posix:{name}", f"{name} pages files (no terminal under the guard)")


def _man(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    risky = ("-P", "--pager", "-H", "--html", "-X", "--gxditview", "-T", "-Z", "-l")
    for word in args:
        if word.text.startswith(risky) or may_be_option(word):
            return dynamic("posix:man", f"man {word.text} runs a program or a file")
    return read("posix:man", "man prints manual pages")


def _date(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    valued = frozenset({"-d", "--date", "-r", "--reference", "-f", "--file"})
    pos, opts = operands(args, valued)
    if any(o in ("-s", "--set") or o.startswith("--set") for o in opts) or any(
        not w.text.startswith("+") for w in pos
    ):
        return dynamic("posix:date", "date sets the system clock")
    return read("posix:date")


def _hostname(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args)
    if pos or "-F" in opts or "--file" in opts:
        return dynamic("posix:hostname", "hostname sets the host name")
    return read("posix:hostname")


def _rg(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    for word in args:
        if may_be_option(word):
            return dynamic("posix:rg", "an rg argument may expand to --pre")
        if word.text.startswith("--pre") and not word.text.startswith("--pre-glob"):
            return dynamic("posix:rg", "rg --pre runs a preprocessor program")
    return read("posix:rg", "rg searches files")


def _tar(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    texts = [w.text for w in args]
    if any(not w.static and w.text[:1] in "$`-" for w in args):
        return dynamic("posix:tar", "a tar argument may expand to an option")
    risky = (
        "--to-command",
        "--checkpoint-action",
        "--use-compress-program",
        "--info-script",
        "--new-volume-script",
        "--rsh-command",
        "-I",
        "-F",
        "--rmt-command",
        "--index-file",
    )
    if any(t.startswith(risky) for t in texts):
        return dynamic("posix:tar", "tar option runs a program")
    mode = _tar_mode(texts)
    archive = _tar_value(texts, "f", "--file")
    if archive and ":" in archive.split("/", 1)[0] and "--force-local" not in texts:
        return Verdict(DYNAMIC, "posix:tar", ("tar archive on a remote host (rsh)",))
    if mode in ("t", "d", ""):
        return read("posix:tar", "tar lists an archive")
    if mode == "x":
        where = _tar_value(texts, "C", "--directory") or "."
        return write("posix:tar", [Word(where)], "tar extracts files")
    return write("posix:tar", [Word(archive or "-")], "tar writes an archive")


def _tar_mode(texts: list[str]) -> str:
    longs = {
        "--extract": "x",
        "--get": "x",
        "--create": "c",
        "--list": "t",
        "--append": "r",
        "--update": "u",
        "--concatenate": "A",
        "--diff": "d",
        "--delete": "r",
    }
    for i, text in enumerate(texts):
        if text in longs:
            return longs[text]
        bundle = text[1:] if text.startswith("-") and not text.startswith("--") else ""
        if i == 0 and not text.startswith("-"):
            bundle = text
        for letter in bundle:
            if letter in "xctruAd":
                return letter
            if letter in _TAR_VALUED and text.startswith("-"):
                break  # getopt: the rest of the bundle is this option's value
    return ""


_TAR_VALUED = frozenset("fCbKNTXgIFHVL")


def _tar_value(texts: list[str], short: str, long: str) -> str | None:
    for i, text in enumerate(texts):
        if text.startswith(long + "="):
            return text.partition("=")[2]
        nxt = texts[i + 1] if i + 1 < len(texts) else None
        if text == long:
            return nxt
        if text.startswith("-") and not text.startswith("--") and short in text:
            rest = text[text.index(short) + 1 :]  # getopt: the rest is the value
            return rest or nxt
        if i == 0 and not text.startswith("-") and text.endswith(short):
            return nxt  # old style "xzf a.tar"
    return None


def _source(name: str, args: tuple[Word, ...], ctx: ClassifyContext) -> Verdict:
    if not args:
        return dynamic(f"posix:{name}", f"{name} without a file")
    return script_verdict(name, args[0], ctx)


def _formatter(checks: tuple[str, ...]) -> Spec:
    def spec(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
        texts = [w.text for w in args]
        fixes = name != "ruff" or "format" in texts or "--fix" in texts
        if not fixes or any(t in checks for t in texts):
            return Verdict(
                WRITE,
                f"posix:{name}",
                (f"{name} checks (writes its cache)",),
                (Word("."),),
            )
        return write(f"posix:{name}", [Word(".")], f"{name} rewrites files")

    return spec


def _kill(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    if any(w.text in ("-l", "-L", "--list") for w in args):
        return read(f"posix:{name}", "lists signals")
    return Verdict(WRITE, f"posix:{name}", (f"{name} signals processes",))


def _lookup_table() -> dict[str, Spec]:
    table: dict[str, Spec] = dict.fromkeys(PLAIN_READ, _plain)
    table.update(FILE_SPECS)
    table.update(NET_SPECS)
    table.update(INTERP_SPECS)
    table.update(WRAPPER_SPECS)
    table.update(ASSIGN_SPECS)
    table.update(READ_TOOL_SPECS)
    table.update(dict.fromkeys(_BUILD_RUNNERS, _runs_project))
    table.update(dict.fromkeys(_EDITORS, _editor))
    table.update(dict.fromkeys(_SHELL_LEVEL, _shell_level))
    table.update(
        {
            "less": _less,
            "more": _less,
            "most": _less,
            "man": _man,
            "date": _date,
            "hostname": _hostname,
            "rg": _rg,
            "tar": _tar,
            "bsdtar": _tar,
            "gtar": _tar,
            "git": git_spec,
            "source": _source,
            ".": _source,
            "pytest": _pytest,
            "ruff": _formatter(("--check", "--diff")),
            "black": _formatter(("--check", "--diff")),
            "isort": _formatter(("--check", "--check-only", "--diff")),
            "hash": _hash,
            "mypy": _formatter(("",)),
            "kill": _kill,
            "pkill": _kill,
            "killall": _kill,
            "mktemp": lambda _n, _a, _c: Verdict(
                WRITE, "posix:mktemp", ("creates a temp file",)
            ),
            "yq": lambda n, a, _c: _inplace(n, a, ("-i", "--inplace")),
            "iconv": lambda n, a, _c: _inplace(n, a, ("-o", "--output")),
        }
    )
    return table


def _hash(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    if any(w.text.startswith("-") and "p" in w.text for w in args):
        return dynamic("posix:hash", "hash -p rebinds a command name to a file")
    return read("posix:hash", "hash lists remembered paths")


def _inplace(name: str, args: tuple[Word, ...], flags: tuple[str, ...]) -> Verdict:
    if any(w.text.startswith(flags) for w in args):
        return write(
            f"posix:{name}",
            [w for w in args if not w.text.startswith("-")][-1:],
            f"{name} writes a file",
        )
    return read(f"posix:{name}")


def _plain(name: str, _args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return read(f"posix:{name}", f"{name} only reads")


def _runs_project(name: str, _args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return dynamic(f"posix:{name}", f"{name} runs project code")


def _pytest(_name: str, _args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return dynamic("posix:pytest", "pytest runs project code")


def _editor(name: str, _args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return dynamic(f"posix:{name}", f"{name} is an editor: writes files, runs commands")


def _shell_level(name: str, _args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return dynamic(f"posix:{name}", f"{name} evaluates code")


SPECS: dict[str, Spec] = _lookup_table()


def lookup(name: str) -> Spec | None:
    """Return the spec for a canonical program name, or ``None`` (unknown)."""
    spec = SPECS.get(name)
    if spec is None and name[:1].isalpha():
        # python3.12, perl5.36, node18: versioned interpreter names.
        spec = SPECS.get(name.rstrip("0123456789.").rstrip("-"))
    return spec
