"""The dispatcher: one command's words -> simple commands, by the registry.

``classify_words`` is the native-program classifier every front end shares
(exec'd argv, the bash walker, cmd.exe lines, native programs called from
PowerShell). It resolves the program name, looks the program up in the
registry (``specs/*.toml`` plus the policy's ``[[programs]]``), hands shells
to their front ends and every other entry to its handler or to the option
engine, then classifies what the command runs (wrapped argv, inline
scripts) recursively.

NOTE(registry): front ends receive ``classify_words`` as a parameter and
never import this module: the classifier's import graph has no cycle (a
test builds it, imports inside functions included).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

from statetrace_guard.classify import bash, cmd
from statetrace_guard.classify.engine import combine, generic
from statetrace_guard.classify.handler_names import FRONT_ENDS
from statetrace_guard.classify.handlers import HANDLERS
from statetrace_guard.classify.interp import script_verdict
from statetrace_guard.classify.knowledge import Knowledge, ProgramEntry
from statetrace_guard.classify.model import (
    ClassifyContext,
    Shell,
    SimpleCommand,
    Word,
)
from statetrace_guard.classify.paths import SINK_FILES, resolve_path
from statetrace_guard.classify.registry import builtin_knowledge
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    WRITE,
    Verdict,
    dynamic,
    read,
    texts,
    unresolvable,
)
from statetrace_guard.levels import Effect

__all__ = [
    "MAX_DEPTH",
    "classify_words",
    "failed",
    "judge",
    "knowledge_of",
    "program_name",
    "walk_bash",
]

MAX_DEPTH = 8
# "-" is stdout for the tools that take a file name
_NOT_FILES = SINK_FILES | {"-"}
_WIN_SUFFIXES = (".exe", ".com")
_LOOKUPS_KEPT = 4096


def knowledge_of(ctx: ClassifyContext) -> Knowledge:
    """The registry a classification uses: the policy's, else the built-in one."""
    return ctx.knowledge if ctx.knowledge is not None else builtin_knowledge()


def failed(
    argv: Sequence[str], shell: Shell, reason: str, spec: str = "unparsed"
) -> SimpleCommand:
    """Build the fail-closed command: effect ``dynamic``."""
    name = argv[0] if argv else ""
    return SimpleCommand(tuple(argv), shell, name, DYNAMIC, spec, (reason,))


def program_name(text: str) -> tuple[str, str | None]:
    """Return ``(canonical name, path as written or None)`` for a command word."""
    if text.startswith("\\") and "/" not in text and "\\" not in text[1:]:
        text = text[1:]  # \curl: the backslash only defeats alias lookup
    path = text if ("/" in text or "\\" in text) else None
    base = posixpath.basename(text.replace("\\", "/")) if path else text
    if base.lower().endswith(_WIN_SUFFIXES):
        base = base[:-4].lower()
    return base, path


def _is_trusted(path: str, ctx: ClassifyContext) -> bool:
    """A program named by a path in a trusted directory is judged by its name."""
    text = path.replace("\\", "/")
    if len(text) > 2 and text[1] == ":" and text[0].isalpha():  # noqa: PLR2004 - C:/
        return knowledge_of(ctx).trusted(posixpath.dirname(text).lower())
    resolved = resolve_path(path, ctx.cwd)
    return resolved is not None and knowledge_of(ctx).trusted(
        posixpath.dirname(resolved)
    )


def judge(
    entry: ProgramEntry, name: str, args: tuple[Word, ...], ctx: ClassifyContext
) -> Verdict:
    """Judge a command by one entry: its handler, or the option engine."""
    if entry.handler is None:
        return generic(entry, name, args, ctx, judge)
    return HANDLERS[entry.handler](entry, name, args, ctx, judge)


def classify_words(  # noqa: PLR0911 - one return per kind of command
    words: Sequence[Word], ctx: ClassifyContext, shell: Shell
) -> list[SimpleCommand]:
    """Classify one native command (its words after quote removal).

    Args:
        words: the command's words, program first.
        ctx: where it runs; ``ctx.depth`` bounds nested shells and wrappers.
        shell: the language the command was found in.

    Returns:
        The command itself followed by everything it runs (wrapped commands,
        inline scripts), each a SimpleCommand; empty when ``words`` is empty.
    """
    if not words:
        return []
    argv = texts(words)
    if ctx.depth > MAX_DEPTH:
        return [failed(argv, shell, "nesting deeper than the classifier follows")]
    head = words[0]
    if not head.static:
        return [failed(argv, shell, "the command name is not static", "dynamic-name")]
    name, path = program_name(head.text)
    args = tuple(words[1:])
    if path is not None and not _is_trusted(path, ctx):
        verdict = script_verdict(name, Word(path), ctx)
        return _build(argv, name, path, verdict, ctx, shell)
    knowledge = ctx.knowledge if ctx.knowledge is not None else builtin_knowledge()
    key = (name, shell)
    entries = knowledge.lookups.get(key)
    if entries is None:
        entries = _lookup(knowledge, name, shell)
        if len(knowledge.lookups) < _LOOKUPS_KEPT:  # a long-lived helper stays bounded
            knowledge.lookups[key] = entries
    if not entries:
        verdict = _unknown(name, path, args)
        return _build(argv, name, path, verdict, ctx, shell)
    if entries[0].handler in FRONT_ENDS:
        return _front_end(entries[0], argv, name, path, args, ctx, shell)
    if len(entries) == 1:
        verdict = judge(entries[0], name, args, ctx)
    else:
        verdict = combine([judge(entry, name, args, ctx) for entry in entries])
    return _build(argv, name, path, verdict, ctx, shell)


# Where a program name is looked up, by the language the command is in:
# cmd.exe's builtins, then Windows programs, then POSIX ones.
_NAMESPACES: dict[str, tuple[str, ...]] = {
    "cmd": ("cmd", "windows"),
    "pwsh": ("windows",),
}


# NOTE(registry): `TOOL --version` alone prints a version for any tool; it
# is read-only even for a program the registry does not know, when named by
# PATH lookup (a program given by path may be a file the agent wrote).
_VERSION_ONLY = frozenset({"--version", "-version"})


def _unknown(name: str, path: str | None, args: tuple[Word, ...]) -> Verdict:
    """An unknown program is dynamic, but for a lone ``--version``."""
    lone = args[0] if len(args) == 1 and args[0].static else None
    if path is None and lone is not None and lone.text in _VERSION_ONLY:
        return read("version-check", f"{name} {lone.text} prints a version")
    return dynamic("unknown", f"{name}: unknown program (fail closed)")


def _lookup(knowledge: Knowledge, name: str, shell: Shell) -> tuple[ProgramEntry, ...]:
    for namespace in _NAMESPACES.get(shell, ()):
        found = knowledge.programs(namespace, name)
        if found:
            return found
    found = knowledge.programs("posix", name)
    if not found and name != name.lower():
        # PowerShell.exe, PWSH; on macOS and Windows CURL runs curl too.
        found = knowledge.programs("posix", name.lower())
    if not found and name[:1].isalpha():
        # python3.12, perl5.36, node18: versioned interpreter names.
        found = knowledge.programs("posix", name.rstrip("0123456789.").rstrip("-"))
    return found


def _front_end(
    entry: ProgramEntry,
    argv: tuple[str, ...],
    name: str,
    path: str | None,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    shell: Shell,
) -> list[SimpleCommand]:
    """Shells hand their script to a parser (``entry.handler`` is a front end)."""
    if entry.handler == "posix-shell":
        return _posix_shell(entry, argv, name, path, args, ctx, shell)
    if entry.handler == "pwsh":
        return _pwsh(argv, args, ctx, shell)
    if entry.handler == "cmd":
        return _cmd(argv, args, ctx, shell)
    return [failed(argv, shell, f"{name} scripts are not parsed", entry.spec)]


def _build(
    argv: tuple[str, ...],
    name: str,
    path: str | None,
    verdict: Verdict,
    ctx: ClassifyContext,
    shell: Shell,
) -> list[SimpleCommand]:
    effects = verdict.effects
    writes: list[Word] = []
    if verdict.writes:  # the common read-only case skips all of this
        writes = [
            w
            for w in verdict.writes
            # A process substitution is a pipe; its command is classified.
            if w.text not in _NOT_FILES and not w.text.startswith(("<(", ">("))
        ]
        if not writes and Effect.WRITE in effects:
            # Every target was /dev/null or a stream: not a write after all.
            effects = (effects - WRITE) or READ
        if any(unresolvable(w) for w in writes):
            effects = effects | DYNAMIC
    command = SimpleCommand(
        argv,
        shell,
        name,
        effects,
        verdict.spec,
        verdict.reasons,
        path,
        verdict.script,
        texts(writes),
        (),
        verdict.urls,
        verdict.hint,
        verdict.env_sets,
        loopback=verdict.loopback,
    )
    out = [command]
    if not verdict.nested and not verdict.scripts:
        return out
    inner = ctx.deeper()
    for nested in verdict.nested:
        out.extend(classify_words(nested, inner, shell))
    for source in verdict.scripts:
        out.extend(_bash_source(source, inner, f"{name} runs a shell command"))
    return out


def _bash_source(source: Word, ctx: ClassifyContext, why: str) -> list[SimpleCommand]:
    if not source.static:
        return [failed(("sh", "-c", source.text), "bash", f"{why} that is not static")]
    if ctx.depth > MAX_DEPTH:
        return [failed(("sh", "-c", source.text), "bash", "shells nested too deep")]
    commands, _ = walk_bash(source.text, ctx)
    return list(commands)


# NOTE(bash): classification is a pure function of (script, cwd, workspace,
# depth, knowledge) and of no policy rule, so results are memoised per
# process: replays and batches repeat the same commands. A result cut short
# by the time budget is not kept (a quieter moment may finish it).
_WALK_CACHE: dict[
    tuple[str, ClassifyContext], tuple[tuple[SimpleCommand, ...], tuple[str, ...]]
] = {}
_WALK_CACHE_SIZE = 4096


def walk_bash(
    text: str, ctx: ClassifyContext
) -> tuple[tuple[SimpleCommand, ...], tuple[str, ...]]:
    """Classify bash source ``text`` (memoised); returns commands and parse errors."""
    key = (text, ctx)
    hit = _WALK_CACHE.get(key)
    if hit is not None:
        return hit
    commands, errors = bash.walk(text, ctx, classify_words)
    result = (tuple(commands), tuple(errors))
    if not any(e.endswith("in time") or " in time at " in e for e in errors):
        if len(_WALK_CACHE) >= _WALK_CACHE_SIZE:
            _WALK_CACHE.clear()
        _WALK_CACHE[key] = result
    return result


def _posix_shell(
    entry: ProgramEntry,
    argv: tuple[str, ...],
    name: str,
    path: str | None,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    shell: Shell,
) -> list[SimpleCommand]:
    mode, operand, problem = _shell_flags(name, args, entry.data)
    if problem:
        verdict = dynamic(entry.spec, problem)
    elif mode == "c" and operand is not None:
        why = f"{name} -c runs an inline script"
        verdict = Verdict(READ, entry.spec, (why,), scripts=(operand,))
    elif operand is not None and mode != "s":
        verdict = script_verdict(name, operand, ctx)
    else:
        verdict = dynamic(entry.spec, f"{name} reads its script from stdin")
    return _build(argv, name, path, verdict, ctx, shell)


def _shell_flags(
    name: str, args: tuple[Word, ...], data: Mapping[str, tuple[str, ...]]
) -> tuple[str, Word | None, str | None]:
    """Return (mode "c"/"s"/"", first operand, problem) for a POSIX shell's args.

    The shell reads all its options first (``bash -c -o pipefail CMD``), a
    cluster's argument letters each take the next word in turn (``-euo
    pipefail``, ``-oO pipefail extglob``); the first operand is the command
    string (mode "c") or the script file. The letters come from the entry's
    ``handler_data``; an unknown letter is a problem (it might take a word).
    """
    mode = ""
    i = 0
    while i < len(args):
        word = args[i]
        text = word.text
        if not word.static:
            return mode, word, None if mode == "c" else "shell argument not static"
        if text in ("-", "--"):  # bash(1): "A single - is equivalent to --"
            return mode, _at(args, i + 1), None
        if text.startswith("--"):
            option = text.partition("=")[0]
            if option in data.get("startup_file_options", ()):
                return mode, None, f"{text} runs a startup file"
            takes = option == text and option in data.get("argument_long_options", ())
            i += 2 if takes else 1
            continue
        if len(text) < 2 or text[0] not in "-+":  # noqa: PLR2004 - a sign and a letter
            return mode, word, None
        mode, i, stop, problem = _cluster(name, args, i, mode, data)
        if problem or stop:
            return mode, None if problem else _at(args, i), problem
    return mode, None, None


def _at(args: tuple[Word, ...], index: int) -> Word | None:
    return args[index] if index < len(args) else None


def _cluster(
    name: str,
    args: tuple[Word, ...],
    i: int,
    mode: str,
    data: Mapping[str, tuple[str, ...]],
) -> tuple[str, int, bool, str | None]:
    """Read the cluster ``args[i]`` (``-euo``): (mode, next index, stop, problem)."""
    text = args[i].text
    i += 1
    stop = False
    for letter in text[1:]:
        if letter in "".join(data.get("argument_letters", ())):
            if i < len(args) and not args[i].static:
                return mode, i, False, f"{name} {text}: option name not static"
            i += 1
        elif letter in "".join(data.get("dynamic_letters", ())):
            return mode, i, False, f"{name} {text}: -{letter} is not followed"
        elif letter in "".join(data.get("end_letters", ())):
            stop = True
        elif letter == "c" or (letter == "s" and mode != "c"):
            mode = letter
        elif letter not in "".join(data.get("flag_letters", ())):
            return mode, i, False, f"{name} {text}: unknown option -{letter}"
    return mode, i, stop, None


def _pwsh(
    argv: tuple[str, ...], args: tuple[Word, ...], ctx: ClassifyContext, shell: Shell
) -> list[SimpleCommand]:
    if not all(w.static for w in args):
        return [failed(argv, shell, "PowerShell argument not static", "pwsh:dynamic")]
    try:
        from statetrace_guard.classify.powershell import (  # noqa: PLC0415 - optional, heavy
            classify_pwsh_argv,
        )
    except ImportError:
        return [
            failed(argv, shell, "PowerShell classifier not available", "pwsh:missing")
        ]
    return list(classify_pwsh_argv(argv, ctx, classify_words))


def _cmd(
    argv: tuple[str, ...], args: tuple[Word, ...], ctx: ClassifyContext, shell: Shell
) -> list[SimpleCommand]:
    texts_lower = [w.text.lower() for w in args]
    idx = next((i for i, t in enumerate(texts_lower) if t in ("/c", "/k", "/r")), None)
    if idx is None:
        return [
            failed(argv, shell, "cmd without /c reads commands from stdin", "cmd:stdin")
        ]
    rest = args[idx + 1 :]
    line = " ".join(w.text for w in rest)
    head = SimpleCommand(
        argv, shell, "cmd", READ, "cmd:cmd", ("cmd /c runs a command line",)
    )
    inner = ctx.deeper()
    if not all(w.static for w in rest):
        return [head, failed(argv, "cmd", "cmd line not static")]
    return [head, *cmd.classify_line(line, inner, classify_words)]
