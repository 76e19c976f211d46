"""One PowerShell command node -> one or more simple commands.

Resolves the command name the way PowerShell does (escapes, quotes, case,
aliases, functions and aliases defined earlier in the script, module-qualified
names, ``&``/``.`` operators), binds the arguments and judges the call with
the cmdlet specs, the Windows-native table, or the POSIX-native classifier.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from statetrace_guard.classify.cmdlets import Arg, Outcome, is_unc, judge
from statetrace_guard.classify.model import ClassifyContext, Shell, SimpleCommand, Word
from statetrace_guard.classify.paths import normalize_script_path, resolve_path
from statetrace_guard.classify.pwsh_text import arg_from_node, node_text, unescape_name
from statetrace_guard.classify.registry import builtin_knowledge
from statetrace_guard.levels import Effect

if TYPE_CHECKING:
    from tree_sitter import Node

    from statetrace_guard.classify.knowledge import Knowledge

__all__ = ["WalkerLike", "judge_command", "script_command", "words_of"]

_READ = frozenset({Effect.READ})
_DYNAMIC = frozenset({Effect.DYNAMIC})
_REDIRECT_TOKEN = re.compile(r"^([1-6*])?(>>?)(&[12])?(.*)$", re.DOTALL)
_SCRIPT_EXTS = (".ps1", ".psm1", ".psd1")
_PWSH_NAMES = frozenset({"pwsh", "powershell", "pwsh.exe", "powershell.exe"})
_MAX_ALIAS_HOPS = 8
_ARG_LEAVES = frozenset({"generic_token", "command_parameter"})
_NUMBER = re.compile(r"^[\d.]+$")  # ``1..3 | ...`` lexed as a command name


class WalkerLike(Protocol):
    """What the command judge needs from the walker in ``powershell.py``.

    The walker carries the shared native classifier and its own nested
    ``pwsh`` classifier, so this module imports neither (no cycle).
    """

    ctx: ClassifyContext
    out: list[SimpleCommand]
    functions: set[str]
    aliases: dict[str, str]
    cwd_prefix: str
    cwd_unknown: bool

    def visit(self, node: Node) -> None:
        """Walk a node."""

    def redirection(self, node: Node) -> list[str]:
        """Return the file a redirection writes."""

    def classify_words(
        self, words: Sequence[Word], ctx: ClassifyContext, shell: Shell
    ) -> list[SimpleCommand]:
        """The shared native classifier (``dispatch.classify_words``)."""

    def nested_pwsh(self, argv: Sequence[str]) -> list[SimpleCommand]:
        """Classify a ``pwsh ...`` command line one level down."""


def _knowledge(walker: WalkerLike) -> Knowledge:
    known = walker.ctx.knowledge
    return known if known is not None else builtin_knowledge()


def _dyn(
    argv: Sequence[str], name: str, reason: str, spec: str = "unknown"
) -> SimpleCommand:
    """Build one dynamic simple command."""
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name=name,
        effects=_DYNAMIC,
        spec=spec,
        reasons=(reason,),
    )


def words_of(args: Sequence[Arg]) -> list[Word]:
    """Arguments as the words a native program receives (``-a:b`` joined)."""
    words: list[Word] = []
    pending: Arg | None = None
    for arg in args:
        if pending is not None:
            words.append(Word(pending.text + ":" + arg.text, arg.static))
            pending = None
        elif arg.kind == "param" and arg.colon:
            pending = arg
        else:
            words.append(Word(arg.text, arg.static))
    if pending is not None:
        words.append(Word(pending.text + ":", static=True))
    return words


def script_command(
    raw: str, args: Sequence[str], ctx: ClassifyContext
) -> SimpleCommand:
    """A script file run with ``args``: dynamic unless the policy names it."""
    script = normalize_script_path(raw.strip("'\""), ctx)
    name = (script or raw.replace("\\", "/")).lower()
    return SimpleCommand(
        argv=(raw, *args),
        shell="pwsh",
        name=name,
        effects=_DYNAMIC,
        spec="script",
        reasons=(f"runs the script {raw}",),
        path=raw,
        script=script,
    )


def _elements(walker: WalkerLike, node: Node | None) -> tuple[list[Arg], list[str]]:
    """Return a command's arguments and redirection targets; walk nested code."""
    args: list[Arg] = []
    redirects: list[str] = []
    expect_target = False
    children = node.children if node is not None else []
    for child in children:
        kind = child.type
        if _digit_suffix(child, args):
            # NOTE(pwsh): the grammar stops a parameter name at a digit
            # (-ExpectedSha256); PowerShell does not.
            args[-1] = Arg(args[-1].text + node_text(child), static=True, kind="param")
        elif kind == "redirection":
            redirects.extend(walker.redirection(child))
        elif (
            kind == "command_argument_sep"
            and child.end_byte - child.start_byte == 1
            and _glued_colon(child, args)
        ):
            # NOTE(pwsh): `-WhatIf:$false` parses as -WhatIf, ":" and $false;
            # PowerShell binds $false to -WhatIf.
            last = args[-1]
            args[-1] = Arg(last.text, last.static, last.kind, last.values, colon=True)
        elif kind != "command_argument_sep" or child.has_error:
            if kind not in _ARG_LEAVES:  # nothing runs inside a bare word
                walker.visit(child)
            if kind != "command_argument_sep" and child.is_named:
                expect_target = _element(child, args, redirects, expect_target)
    return args, redirects


def _element(node: Node, args: list[Arg], redirects: list[str], expect: bool) -> bool:
    """Add one element to ``args`` or ``redirects``; True when a target follows."""
    if node.type == "stop_parsing":
        args.extend(_verbatim(node_text(node)))
        return False
    arg = arg_from_node(node)
    if expect:
        if arg.text.lower() != "$null":
            redirects.append(arg.text if arg.static else "$" + arg.text.lstrip("$"))
        return False
    target = _token_redirect(arg) if node.type == "generic_token" else None
    if target is None:
        args.append(arg)
    elif target == "":
        return True
    elif target != "$null":
        redirects.append(target)
    return False


def _verbatim(text: str) -> list[Arg]:
    """``--% a b "c d"``: the rest of the line, split as the program splits it.

    NOTE(pwsh): after the stop-parsing token PowerShell passes the text as
    it stands; the program then splits it into arguments (``git log --%
    --output=f`` gives git ``--output=f``). ``%VAR%`` expands at run time.
    """
    rest = text.removeprefix("--%")
    try:
        parts = shlex.split(rest)
    except ValueError:
        parts = rest.split()
    return [Arg(part, static="%" not in part) for part in parts]


def _glued_colon(node: Node, args: Sequence[Arg]) -> bool:
    """A ``:`` separator glued to the parameter just before it."""
    if node.type != "command_argument_sep" or node_text(node) != ":" or not args:
        return False
    prev = node.prev_sibling
    glued = prev is not None and prev.end_byte == node.start_byte
    return glued and args[-1].kind == "param" and not args[-1].colon


def _digit_suffix(node: Node, args: Sequence[Arg]) -> bool:
    """An ERROR of digits glued to the parameter just before it."""
    if node.type not in {"ERROR", "redirection"} or not args:
        return False
    if args[-1].kind != "param" or not node.has_error:
        return False
    prev = node.prev_sibling
    glued = prev is not None and prev.end_byte == node.start_byte
    return glued and node_text(node).isdigit()


def _token_redirect(arg: Arg) -> str | None:
    """``2>$null``/``>f`` lexed as a bare word: its target, ``""`` for next."""
    match = _REDIRECT_TOKEN.match(arg.text)
    if match is None:
        return None
    if match.group(3):
        return "$null"  # 2>&1 merges streams: writes nothing
    rest = match.group(4)
    return "$null" if rest.lower() == "$null" else rest


def judge_command(walker: WalkerLike, node: Node) -> None:
    """Judge one ``command`` node; append its simple commands to the walker."""
    operator = ""
    name_node = None
    elements = None
    for index, child in enumerate(node.children):
        field = node.field_name_for_child(index)
        if child.type == "command_invokation_operator":
            operator = node_text(child).strip()
        elif field == "command_name":
            name_node = child
        elif field == "command_elements":
            elements = child
    args, redirects = _elements(walker, elements)
    if name_node is None:
        walker.out.append(
            _dyn((node_text(node)[:200],), "pwsh", "command without a name")
        )
        return
    written = _name_of(walker, name_node)
    if written is None:
        reason = "the command name is computed at run time"
        walker.out.append(_dyn((node_text(name_node), *_texts(args)), "&", reason))
        return
    if written == "":
        return  # ``& { ... }``: the block was walked as the name
    where = _where(walker)
    found = _resolve(walker, written, operator, args, redirects)
    if where is not None:
        found = [c if c.cwd is not None else replace(c, cwd=where) for c in found]
    walker.out.extend(found)


def _where(walker: WalkerLike) -> str | None:
    """Where a command runs after Set-Location (``""``: unknown), else None."""
    if walker.cwd_unknown:
        return ""
    if not walker.cwd_prefix:
        return None
    return resolve_path(walker.cwd_prefix, walker.ctx.cwd) or ""


def _name_of(walker: WalkerLike, node: Node) -> str | None:
    """The command name as written; ``None`` when not static, ``""`` for blocks."""
    if node.type == "command_name":
        return unescape_name(node_text(node))
    inner = node.named_children[0] if node.named_children else None
    if inner is None:
        return None
    if inner.type == "script_block_expression":
        walker.visit(inner)
        return ""
    if inner.type == "command_name" or _static_path_name(inner):
        return unescape_name(node_text(inner))
    walker.visit(inner)
    arg = arg_from_node(inner)
    return arg.text if arg.static and arg.kind == "word" else None


def _static_path_name(node: Node) -> bool:
    """A ``path_command_name`` made of path tokens only (no ``$var``)."""
    if node.type != "path_command_name":
        return False
    return all(c.type == "path_command_name_token" for c in node.named_children)


def _texts(args: Sequence[Arg]) -> tuple[str, ...]:
    """The arguments' texts."""
    return tuple(a.text for a in args)


def _canonical(walker: WalkerLike, written: str) -> str:
    """Follow script-defined aliases, module qualifiers and built-in aliases."""
    knowledge = _knowledge(walker)
    name = written.lower()
    for _ in range(_MAX_ALIAS_HOPS):
        if name not in walker.aliases:
            break
        name = walker.aliases[name]
    if "\\" in name and not name.endswith(_SCRIPT_EXTS):
        tail = name.rsplit("\\", 1)[-1]
        if knowledge.cmdlet_name(tail) is not None:
            name = tail
    return knowledge.cmdlet_name(name) or name


def _resolve(
    walker: WalkerLike,
    written: str,
    operator: str,
    args: list[Arg],
    redirects: list[str],
) -> list[SimpleCommand]:
    """Pick the knowledge that judges a command named ``written``."""
    name = _canonical(walker, written)
    argv = (written, *_texts(args))
    if name in walker.functions:
        return [_function_call(argv, name, redirects, walker)]
    knowledge = _knowledge(walker)
    known = knowledge.cmdlet(name) is not None
    if known and (not _is_path(written) or _module_qualified(written, knowledge)):
        outcome = judge(name, args, knowledge, written.lower())
        if outcome is not None:
            _track_location(walker, name, args)
            walker.aliases.update(outcome.aliases)
            return [_outcome_command(walker, outcome, argv, name, redirects)]
    return _resolve_program(walker, written, operator, args, redirects)


def _resolve_program(
    walker: WalkerLike,
    written: str,
    operator: str,
    args: list[Arg],
    redirects: list[str],
) -> list[SimpleCommand]:
    """Scripts, nested PowerShell, Windows natives, unknown cmdlets, natives."""
    lower = written.lower()
    base = lower.replace("\\", "/").rsplit("/", 1)[-1]
    words = words_of(args)
    extra = _redirect_commands(walker, redirects)
    if base in _PWSH_NAMES:
        return _nested_pwsh(walker, written, words) + extra
    if _is_script(lower, operator):
        raw = _relocate(walker, written)
        return [script_command(raw, [w.text for w in words], walker.ctx), *extra]
    if _NUMBER.match(lower):
        return [_expression(written, words), *extra]
    if "-" in lower and "." not in base and "/" not in lower.replace("\\", "/"):
        reason = f"{written} is not a built-in cmdlet: the policy decides"
        return [_dyn((written, *[w.text for w in words]), lower, reason), *extra]
    return _native(walker, written, words) + extra


def _module_qualified(written: str, knowledge: Knowledge) -> bool:
    r"""``Microsoft.PowerShell.Utility\Invoke-WebRequest``: a module's cmdlet."""
    head, sep, tail = written.rpartition("\\")
    plain = sep and head and not head.startswith(".") and ":" not in head
    known = knowledge.cmdlet_name(tail.lower()) is not None
    return bool(plain) and "/" not in head and known


def _expression(written: str, words: Sequence[Word]) -> SimpleCommand:
    """A number or range the grammar took for a command name: a value."""
    return SimpleCommand(
        argv=(written, *[w.text for w in words]),
        shell="pwsh",
        name="expression",
        effects=_READ,
        spec="pwsh:expression",
        reasons=("an expression: reads values",),
    )


def _is_path(written: str) -> bool:
    """Tell whether a command name is written as a path."""
    return "/" in written or "\\" in written


def _is_script(lower: str, operator: str) -> bool:
    """A ``.ps1`` file, or a path run with ``&``/``.`` that is no program."""
    if lower.endswith(_SCRIPT_EXTS):
        return True
    base = lower.replace("\\", "/").rsplit("/", 1)[-1]
    return _is_path(lower) and "." not in base and operator in {"&", ".", ""}


def _relocate(walker: WalkerLike, raw: str) -> str:
    """Prefix a relative path with the directory Set-Location moved to."""
    if not walker.cwd_prefix or _is_absolute(raw):
        return raw
    return posixpath.join(walker.cwd_prefix, raw.replace("\\", "/"))


def _is_absolute(raw: str) -> bool:
    r"""Absolute in either world: ``/x``, ``\\x``, ``C:``, ``~``, ``HKCU:``."""
    return raw.startswith(("/", "\\", "~")) or ":" in raw[:12]


def _nested_pwsh(
    walker: WalkerLike, written: str, words: Sequence[Word]
) -> list[SimpleCommand]:
    """``pwsh ...`` inside a script: classify its command line one level down.

    Arguments computed at run time are fine after a static script path (they
    are the script's arguments); anywhere else they could be the script.
    """
    texts = [w.text for w in words]
    first_dynamic = next((i for i, w in enumerate(words) if not w.static), len(words))
    script_at = next(
        (i for i, t in enumerate(texts) if t.lower().endswith(".ps1")), None
    )
    if first_dynamic < len(words) and (script_at is None or script_at > first_dynamic):
        reason = "pwsh with arguments known only at run time"
        return [_dyn((written, *texts), "pwsh", reason)]
    return walker.nested_pwsh([written, *texts])


def _native(
    walker: WalkerLike, written: str, words: Sequence[Word]
) -> list[SimpleCommand]:
    """A native program: the shared classifier (Windows, then POSIX entries)."""
    return list(walker.classify_words([Word(written), *words], walker.ctx, "pwsh"))


def _function_call(
    argv: Sequence[str], name: str, redirects: Sequence[str], walker: WalkerLike
) -> SimpleCommand:
    """A call of a function defined in the same script (its body was walked)."""
    effects = {Effect.READ}
    if redirects:
        effects.add(Effect.WRITE)
    _ = walker
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name=name,
        effects=frozenset(effects),
        spec="pwsh:function",
        reasons=("calls a function defined in the script",),
        redirects=tuple(redirects),
    )


def _redirect_commands(
    walker: WalkerLike, redirects: Sequence[str]
) -> list[SimpleCommand]:
    """Redirections of a non-cmdlet command, as their own write commands."""
    if not redirects:
        return []
    targets = [_relocate(walker, r) for r in redirects]
    effects = {Effect.WRITE}
    if any("$" in t for t in targets):
        effects.add(Effect.DYNAMIC)
    if any(is_unc(t) for t in targets):
        effects.add(Effect.NETWORK)
    return [
        SimpleCommand(
            argv=tuple(targets),
            shell="pwsh",
            name="redirection",
            effects=frozenset(effects),
            spec="pwsh:redirection",
            reasons=tuple(f"redirects output to {t}" for t in targets),
            redirects=tuple(targets),
        )
    ]


def _outcome_command(
    walker: WalkerLike,
    outcome: Outcome,
    argv: Sequence[str],
    name: str,
    redirects: Sequence[str],
) -> SimpleCommand:
    """Build the simple command for a judged cmdlet call."""
    effects = set(outcome.effects)
    reasons = list(outcome.reasons)
    targets = tuple(_relocate(walker, r) for r in redirects)
    writes = tuple(_relocate(walker, w) for w in outcome.writes)
    if targets:
        effects.add(Effect.WRITE)
        reasons.extend(f"redirects output to {t}" for t in targets)
    if any("$" in t for t in targets):
        effects.add(Effect.DYNAMIC)
    if any(is_unc(t) for t in targets):
        effects.add(Effect.NETWORK)
    if walker.cwd_unknown and (writes or targets):
        effects.add(Effect.DYNAMIC)
        reasons.append("writes relative to a directory known only at run time")
    script = _relocate(walker, outcome.script) if outcome.script else None
    normalized = None
    if script is not None:
        normalized = normalize_script_path(script, walker.ctx)
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name=name,
        effects=frozenset(effects),
        spec=outcome.spec,
        reasons=tuple(reasons),
        writes=writes,
        redirects=targets,
        urls=outcome.urls,
        env_sets=outcome.env_sets,
        script=normalized,
    )


def _track_location(walker: WalkerLike, name: str, args: Sequence[Arg]) -> None:
    """Set-Location/Push-Location/Pop-Location move later relative paths."""
    if name == "pop-location":
        walker.cwd_unknown = True
        return
    if name not in {"set-location", "push-location"}:
        return
    target = next((a for a in args if a.kind != "param"), None)
    if target is None:
        walker.cwd_unknown = True  # ``cd`` alone: home on pwsh 7
        return
    if not target.static:
        walker.cwd_unknown = True
        return
    path = target.text.replace("\\", "/")
    drive, sep, _ = path.partition(":")
    if sep and len(drive) != 1:  # a provider (HKCU:, Env:): not files
        walker.cwd_unknown = True
        return
    walker.cwd_prefix = (
        path if _is_absolute(path) else posixpath.join(walker.cwd_prefix, path)
    )
