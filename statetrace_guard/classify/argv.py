"""Entry points: classify a top-level argv, a script, or one command's words.

``classify_words`` is the native-program classifier shared by every
front end (exec'd argv, the bash walker, cmd.exe lines, native programs
called from PowerShell): it resolves the program name, dispatches shells to
their parsers and everything else to the spec table, then classifies what
the command runs (wrapped argv, inline scripts) recursively.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Literal

from statetrace_guard.classify import bash, cmd
from statetrace_guard.classify.interp import script_verdict
from statetrace_guard.classify.model import (
    Classification,
    ClassifyContext,
    Shell,
    SimpleCommand,
    Word,
)
from statetrace_guard.classify.native import lookup
from statetrace_guard.classify.paths import SINK_FILES, resolve_path
from statetrace_guard.classify.repoconfig import flag_nested_repo_configs
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    WRITE,
    Verdict,
    dynamic,
    texts,
    unresolvable,
)
from statetrace_guard.levels import Effect

__all__ = [
    "MAX_DEPTH",
    "classify_argv",
    "classify_script",
    "classify_words",
    "failed",
    "program_name",
    "walk_bash",
]

MAX_DEPTH = 8
# Where system programs live: a program named by one of these paths is judged
# by its name; any other path is a file the agent may have written.
_SYSTEM_DIRS = frozenset(
    {
        "/bin",
        "/usr/bin",
        "/usr/local/bin",
        "/sbin",
        "/usr/sbin",
        "/usr/local/sbin",
        "/opt/homebrew/bin",
        "/usr/libexec/git-core",
        "/run/current-system/sw/bin",
    }
)
_POSIX_SHELLS = frozenset(
    {
        "bash",
        "sh",
        "dash",
        "zsh",
        "ksh",
        "mksh",
        "ash",
        "yash",
        "posh",
        "rbash",
        "lksh",
        "oksh",
        "loksh",
        "ksh93",
        "bosh",
    }
)
_OTHER_SHELLS = frozenset({"fish", "csh", "tcsh", "nu", "xonsh", "elvish", "rc", "es"})
_PWSH = frozenset({"pwsh", "powershell", "pwsh-preview", "powershell_ise"})
# "-" is stdout for the tools that take a file name
_NOT_FILES = SINK_FILES | {"-"}
_WIN_SUFFIXES = (".exe", ".com")


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


def _is_system(path: str, ctx: ClassifyContext) -> bool:
    resolved = resolve_path(path, ctx.cwd)
    return resolved is not None and posixpath.dirname(resolved) in _SYSTEM_DIRS


def classify_words(
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
    if path is not None and not _is_system(path, ctx):
        verdict = script_verdict(name, Word(path), ctx)
        return _build(argv, name, path, verdict, ctx, shell)
    return _dispatch(argv, name, path, args, ctx, shell)


def _dispatch(
    argv: tuple[str, ...],
    name: str,
    path: str | None,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    shell: Shell,
) -> list[SimpleCommand]:
    lower = name.lower()
    if name in _POSIX_SHELLS:
        return _posix_shell(argv, name, path, args, ctx, shell)
    if lower in _PWSH:
        return _pwsh(argv, args, ctx, shell)
    if lower == "cmd":
        return _cmd(argv, args, ctx, shell)
    if name in _OTHER_SHELLS:
        return [failed(argv, shell, f"{name} scripts are not parsed", f"posix:{name}")]
    spec = lookup(name)
    if spec is None:
        verdict = dynamic("unknown", f"{name}: unknown program (fail closed)")
    else:
        verdict = spec(name, args, ctx)
    return _build(argv, name, path, verdict, ctx, shell)


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
    )
    out = [command]
    inner = ClassifyContext(ctx.cwd, ctx.workspace, ctx.depth + 1)
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
# depth) and of no policy, so results are memoised per process: replays and
# batches repeat the same commands. A result cut short by the time budget is
# not kept (a quieter moment may finish it).
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
    argv: tuple[str, ...],
    name: str,
    path: str | None,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    shell: Shell,
) -> list[SimpleCommand]:
    mode, operand, problem = _shell_flags(args)
    spec = f"posix:{name}"
    if problem:
        verdict = dynamic(spec, problem)
    elif mode == "c" and operand is not None:
        verdict = Verdict(
            READ, spec, (f"{name} -c runs an inline script",), scripts=(operand,)
        )
    elif operand is not None and mode != "s":
        verdict = script_verdict(name, operand, ctx)
    else:
        verdict = dynamic(spec, f"{name} reads its script from stdin")
    return _build(argv, name, path, verdict, ctx, shell)


def _shell_flags(args: tuple[Word, ...]) -> tuple[str, Word | None, str | None]:
    """Return (mode "c"/"s"/"", first operand, problem) for a POSIX shell's args."""
    mode = ""
    it = iter(args)
    for word in it:
        text = word.text
        if not word.static:
            return mode, word, None if mode == "c" else "shell argument not static"
        if text in ("--rcfile", "--init-file") or text.startswith(
            ("--rcfile=", "--init-file=")
        ):
            return mode, None, f"{text} runs a startup file"
        if text == "--":
            return mode, next(it, None), None
        if text in ("-o", "+o", "-O", "+O"):
            next(it, None)
        elif text.startswith("--"):
            continue
        elif text[:1] in "-+" and len(text) > 1:
            mode = (
                "c" if "c" in text else ("s" if "s" in text and mode != "c" else mode)
            )
        else:
            return mode, word, None
    return mode, None, None


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
    return list(classify_pwsh_argv(argv, ctx))


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
    inner = ClassifyContext(ctx.cwd, ctx.workspace, ctx.depth + 1)
    if not all(w.static for w in rest):
        return [head, failed(argv, "cmd", "cmd line not static")]
    return [head, *cmd.classify_line(line, inner, classify_words)]


def classify_argv(argv: Sequence[str], ctx: ClassifyContext) -> Classification:
    """Classify a top-level argv exactly as it would be exec'd (no shell).

    Never raises: an unexpected internal error becomes one ``dynamic`` command.
    """
    try:
        found = classify_words([Word(a) for a in argv], ctx, "exec")
        return Classification(flag_nested_repo_configs(found, ctx))
    except Exception as exc:  # noqa: BLE001 - classification must never raise
        return Classification(
            (failed(tuple(argv), "exec", f"internal error: {exc!r}"),)
        )


def classify_script(
    text: str, shell: Literal["bash", "pwsh"], ctx: ClassifyContext
) -> Classification:
    """Classify a script in ``shell``'s language; never raises."""
    try:
        if shell == "pwsh":
            return _pwsh_script(text, ctx)
        commands, errors = walk_bash(text, ctx)
        return Classification(flag_nested_repo_configs(commands, ctx), errors)
    except Exception as exc:  # noqa: BLE001 - classification must never raise
        return Classification((failed((text,), shell, f"internal error: {exc!r}"),))


def _pwsh_script(text: str, ctx: ClassifyContext) -> Classification:
    try:
        from statetrace_guard.classify.powershell import (  # noqa: PLC0415 - optional, heavy
            classify_pwsh_script,
        )
    except ImportError:
        return Classification(
            (failed((text,), "pwsh", "PowerShell classifier missing"),)
        )
    found = classify_pwsh_script(text, ctx)
    return Classification(flag_nested_repo_configs(found, ctx))
