"""Wrappers: programs classified by the command they run.

A wrapper's own verdict is read-only (or ``dynamic`` for privilege changes
such as ``sudo``) and names the wrapped argv in ``nested``; the dispatcher
classifies that argv with the same rules, so ``timeout 5 curl x`` is network.
``find`` and ``xargs`` live here too: they run commands built from their
arguments and their input (the input's words are not static).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import replace

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

__all__ = ["DANGEROUS_ENV", "WRAPPER_SPECS", "dangerous_env"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]

_INPUT = Word("{input}", static=False)
# Variables that make the next program run other code, change where it looks
# for programs or config, or flip the guard's own switches.
DANGEROUS_ENV = frozenset(
    {
        "BASH_ENV",
        "ENV",
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "PAGER",
        "MANPAGER",
        "LESSOPEN",
        "LESSCLOSE",
        "LESS",
        "EDITOR",
        "VISUAL",
        "SHELL",
        "PROMPT_COMMAND",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "CDPATH",
        "TAR_OPTIONS",
        "GZIP",
        "RSYNC_RSH",
        "SSH_ASKPASS",
        "RIPGREP_CONFIG_PATH",
        "MAKEFLAGS",
        "AWKPATH",
        "HOME",
        "XDG_CONFIG_HOME",
        "ZDOTDIR",
        "INPUTRC",
        "BROWSER",
        "GLOBIGNORE",
        "SUDO_ASKPASS",
        "LD_BIND_NOW",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "GCONV_PATH",
        "CURL_HOME",
        "WGETRC",
        "SYSTEMD_PAGER",
        "PYTHONWARNINGS",
        "PYTHONBREAKPOINT",
        "DOTNET_STARTUP_HOOKS",
        "RUSTC_WRAPPER",
        "NPM_CONFIG_SCRIPT_SHELL",
        "LESSKEY",
        "TERMINFO",
        "ZIPOPT",
        "RSYNC_CONNECT_PROG",
        "MANOPT",
        "PERL5DB",
        "PYTHONUSERBASE",
        "GOFLAGS",
        "BASH_CMDS",
        "BASH_ALIASES",
        "EXECIGNORE",
        "BASH_LOADABLES_PATH",
        "GOTOOLCHAIN",
        "GOENV",
    }
)
_RISKY_PREFIXES = (
    "DYLD_",
    "LD_",
    "STATETRACE_",
    "BASH_FUNC_",
    "npm_config_",
    "NPM_CONFIG_",
    "CARGO_BUILD_",
    "PSModulePath",
)
_RISKY_SUFFIXES = ("PAGER", "EDITOR", "ASKPASS")
_SAFE_GIT_ENV = ("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_TERMINAL_PROMPT")


def dangerous_env(name: str) -> bool:
    """Tell whether setting ``name`` can change what later commands run."""
    # BASH_FUNC_x%%: bash imports it as function x (the Shellshock channel).
    if name in DANGEROUS_ENV or name.startswith(_RISKY_PREFIXES):
        return True
    if name.upper().endswith(_RISKY_SUFFIXES):  # GH_PAGER, SUDO_EDITOR, ...
        return True
    return name.startswith("GIT_") and not name.startswith(_SAFE_GIT_ENV)


def _skip_options(
    args: tuple[Word, ...], valued: frozenset[str], positionals: int = 0
) -> tuple[Word, ...] | None:
    """Drop the wrapper's options and ``positionals`` leading operands.

    ``None`` when an option word is not static (it could be anything).
    """
    i = 0
    while i < len(args):
        word = args[i]
        if may_be_option(word):
            return None
        if word.text == "--":
            i += 1
            break
        if not word.text.startswith("-") or word.text == "-":
            break
        i += 2 if word.text in valued else 1
    return args[i + positionals :]


def _wrapper(valued: frozenset[str] = frozenset(), positionals: int = 0) -> Spec:
    def spec(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
        rest = _skip_options(args, valued, positionals)
        if rest is None:
            return dynamic(f"posix:{name}", f"{name} option not static")
        effects = DYNAMIC if name in _PRIVILEGED else READ
        reason = f"{name} runs the command it wraps"
        if name in _PRIVILEGED:
            reason = f"{name} changes privilege: never allowed"
        return Verdict(
            effects, f"posix:{name}", (reason,), nested=(rest,) if rest else ()
        )

    return spec


_PRIVILEGED = frozenset(
    {
        "sudo",
        "doas",
        "su",
        "runuser",
        "pkexec",
        "run0",
        "chroot",
        "nsenter",
        "unshare",
        "setpriv",
        "capsh",
    }
)


def _env(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    return _env_words(args)


def _env_words(args: tuple[Word, ...]) -> Verdict:
    sets: list[str] = []
    cleared: list[str] = []
    rest = list(args)
    while rest:
        word = rest[0]
        if may_be_option(word):
            return dynamic("posix:env", "env argument not static")
        text = word.text
        if text in ("-S", "--split-string") or text.startswith(
            ("-S", "--split-string=")
        ):
            return _env_split(rest, [*sets, *cleared])
        if text in ("-C", "--chdir"):
            return dynamic("posix:env", "env -C changes directory")
        unset = _env_unset(rest)
        if unset is not None:
            if unset.startswith(_CLEARS_RISKY) or not unset:
                return _env_cleared(unset)
            cleared.append(unset)  # clearing a variable counts as setting it
            continue
        if text.startswith("-") and text != "-":
            del rest[0]
            continue
        if "=" in text and not text.startswith("="):
            sets.append(text.split("=", 1)[0])
            del rest[0]
            continue
        break
    verdict = _env_verdict(sets, tuple(rest))
    return replace(verdict, env_sets=(*verdict.env_sets, *cleared))


_CLEARS_RISKY = ("STATETRACE_", "PATH")


def _env_unset(rest: list[Word]) -> str | None:
    """Consume ``-u NAME`` / ``-uNAME`` / ``--unset=NAME``; return NAME."""
    text = rest[0].text
    if text in ("-u", "--unset"):
        name = rest[1] if len(rest) > 1 else Word("")
        del rest[:2]
    elif text.startswith("--unset=") or (text.startswith("-u") and text != "-u"):
        name = Word(text.partition("=")[2] if "=" in text else text[2:], rest[0].static)
        del rest[0]
    else:
        return None
    return name.text if name.static else ""


def _env_cleared(name: str) -> Verdict:
    """``env -u STATETRACE_GUARD_ACTIVE``: guard's switches or a hijack."""
    return Verdict(
        DYNAMIC,
        "posix:env",
        (f"env -u clears {name or 'a variable named at run time'}",),
        env_sets=(name,) if name else (),
    )


def _env_split(rest: list[Word], sets: list[str]) -> Verdict:
    first = rest[0].text
    inline = first[2:] if first.startswith("-S") and first != "-S" else ""
    inline = first.partition("=")[2] if first.startswith("--split-string=") else inline
    tail = rest[1:] if inline else rest[2:]
    body = inline or (rest[1].text if len(rest) > 1 else "")
    if not (rest[1:2] and rest[1].static) and not inline:
        return dynamic("posix:env", "env -S string not static")
    try:
        words = tuple(Word(w) for w in shlex.split(body))
    except ValueError:
        return dynamic("posix:env", "env -S string does not split")
    inner = _env_words((*words, *tail))
    risky = any(dangerous_env(s) for s in sets)
    return Verdict(
        inner.effects | DYNAMIC if risky else inner.effects,
        inner.spec,
        inner.reasons,
        nested=inner.nested,
        env_sets=(*sets, *inner.env_sets),
    )


def _env_verdict(sets: list[str], rest: tuple[Word, ...]) -> Verdict:
    risky = [s for s in sets if dangerous_env(s)]
    if risky:
        return Verdict(
            DYNAMIC,
            "posix:env",
            (f"env sets {', '.join(risky)}",),
            nested=(rest,) if rest else (),
            env_sets=tuple(sets),
        )
    reason = "env runs the command it wraps" if rest else "env prints the environment"
    return Verdict(
        READ,
        "posix:env",
        (reason,),
        nested=(rest,) if rest else (),
        env_sets=tuple(sets),
    )


def _command(name: str, args: tuple[Word, ...], ctx: ClassifyContext) -> Verdict:
    if any(w.text in ("-v", "-V") for w in args[:2]):
        return read(f"posix:{name}", f"{name} -v looks a name up")
    return _wrapper(frozenset({"-a"}))(name, args, ctx)


def _to_shell(name: str, args: tuple[Word, ...], valued: frozenset[str]) -> Verdict:
    """``watch`` and friends run their joined arguments with ``sh -c``."""
    rest = _skip_options(args, valued)
    if rest is None or not rest:
        return dynamic(f"posix:{name}", f"{name} command not static")
    source = " ".join(w.text for w in rest)
    static = all(w.static for w in rest)
    return Verdict(
        READ,
        f"posix:{name}",
        (f"{name} runs its command with sh",),
        scripts=(Word(source, static),),
    )


def _dash_c(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    """``script -c CMD``, ``flock FILE -c CMD``: a shell command in an option."""
    for i, word in enumerate(args):
        if word.text in ("-c", "--command") and i + 1 < len(args):
            effects = DYNAMIC if name in _PRIVILEGED else READ
            return Verdict(
                effects,
                f"posix:{name}",
                (f"{name} -c runs a shell command",),
                scripts=(args[i + 1],),
            )
    if name == "flock":
        return _wrapper(frozenset({"-w", "-E", "--timeout"}), 1)(name, args, _ctx)
    if name == "script":
        return Verdict(
            WRITE,
            "posix:script",
            ("script records a session",),
            writes=tuple(w for w in args if not w.text.startswith("-"))[:1],
        )
    return _wrapper(frozenset({"-u", "-g", "-s"}))(name, args, _ctx)


def _xargs(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    valued = frozenset(
        {
            "-I",
            "-d",
            "-a",
            "-E",
            "-L",
            "-n",
            "-P",
            "-s",
            "--max-args",
            "--delimiter",
            "--arg-file",
            "--max-procs",
            "--max-lines",
        }
    )
    rest = _skip_options(args, valued)
    if rest is None:
        return dynamic("posix:xargs", "xargs option not static")
    replace = _xargs_replace(args)
    cmd = rest or (Word("echo"),)
    if replace:
        cmd = tuple(
            Word(w.text.replace(replace, _INPUT.text), static=False)
            if replace in w.text
            else w
            for w in cmd
        )
    else:
        cmd = (*cmd, _INPUT)
    return Verdict(
        READ, "posix:xargs", ("xargs runs a command on its input",), nested=(cmd,)
    )


def _xargs_replace(args: tuple[Word, ...]) -> str | None:
    """The replace string of ``-I R``, ``-IR``, ``-i[R]`` or ``--replace[=R]``."""
    for i, word in enumerate(args):
        text = word.text
        if text == "--":
            return None
        if text == "-I" and i + 1 < len(args):
            return args[i + 1].text
        if text.startswith("-I"):  # NOTE(bypass): `-I{}` attached, as usually written
            return text[2:]
        if text == "--replace" or text.startswith("--replace="):
            return text.partition("=")[2] or "{}"
        if text.startswith("-i"):
            return text[2:] or "{}"
    return None


def _parallel(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    texts = [w.text for w in args]
    cut = next((i for i, t in enumerate(texts) if t in (":::", "::::", ":::+")), None)
    if cut is None:
        return dynamic("posix:parallel", "parallel reads commands from stdin")
    rest = _skip_options(args[:cut], frozenset({"-j", "-S", "--jobs"}))
    if not rest:
        return dynamic("posix:parallel", "parallel command not static or missing")
    return Verdict(
        READ,
        "posix:parallel",
        ("parallel runs a command per input",),
        nested=((*rest, _INPUT),),
    )


_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FIND_WRITE = frozenset({"-fprint", "-fprint0", "-fprintf", "-fls"})


def _find(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    nested: list[tuple[Word, ...]] = []
    writes: list[Word] = []
    starts = [w for w in args if not w.text.startswith(("-", "(", "!"))][:1]
    i = 0
    while i < len(args):
        word = args[i]
        if may_be_option(word):
            return dynamic("posix:find", "a find argument may expand to an action")
        if word.text in _FIND_EXEC:
            end = _find_end(args, i + 1)
            match = Word((starts[0].text if starts else ".") + "/*", static=False)
            nested.append(
                tuple(match if w.text == "{}" else w for w in args[i + 1 : end])
            )
            i = end + 1
            continue
        if word.text in _FIND_WRITE and i + 1 < len(args):
            writes.append(args[i + 1])
        if word.text == "-delete":
            writes.extend(starts or [Word(".")])
        i += 1
    effects = WRITE if writes else READ
    return Verdict(
        effects,
        "posix:find",
        ("find walks a tree",),
        tuple(writes),
        nested=tuple(nested),
    )


def _find_end(args: tuple[Word, ...], i: int) -> int:
    while i < len(args) and args[i].text not in (";", "+"):
        i += 1
    return i


WRAPPER_SPECS: dict[str, Spec] = {
    "env": _env,
    "timeout": _wrapper(frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "nice": _wrapper(frozenset({"-n", "--adjustment"})),
    "nohup": _wrapper(),
    "stdbuf": _wrapper(frozenset({"-i", "-o", "-e"})),
    "time": _wrapper(frozenset({"-f", "--format"})),
    "command": _command,
    "builtin": _wrapper(),
    "exec": _wrapper(frozenset({"-a"})),
    "sudo": _wrapper(frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"})),
    "doas": _wrapper(frozenset({"-u", "-C"})),
    "pkexec": _wrapper(frozenset({"--user"})),
    "run0": _wrapper(frozenset({"--user", "-u"})),
    "chroot": _wrapper(frozenset({"--userspec", "--groups"}), 1),
    "nsenter": _wrapper(frozenset({"-t", "--target"})),
    "unshare": _wrapper(),
    "setpriv": _wrapper(),
    "capsh": _dash_c,
    "su": _dash_c,
    "runuser": _dash_c,
    "busybox": _wrapper(),
    "watch": lambda n, a, _c: _to_shell(n, a, frozenset({"-n", "--interval", "-d"})),
    "flock": _dash_c,
    "script": _dash_c,
    "parallel": _parallel,
    "chrt": _wrapper(frozenset(), 1),
    "ionice": _wrapper(frozenset({"-c", "-n", "--class", "--classdata"})),
    "taskset": _wrapper(frozenset({"--cpu-list"}), 1),
    "setsid": _wrapper(),
    "unbuffer": _wrapper(),
    "strace": _wrapper(frozenset({"-e", "-o", "-p", "-s", "-u", "-E"})),
    "ltrace": _wrapper(frozenset({"-e", "-o", "-p", "-s", "-u"})),
    "xargs": _xargs,
    "find": _find,
    "nocache": _wrapper(),
    "caffeinate": _wrapper(),
    "firejail": _wrapper(),
    "proot": _wrapper(),
    "faketime": _wrapper(frozenset(), 1),
}
