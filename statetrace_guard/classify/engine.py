"""The option engine: a registry entry and a command's words -> a Verdict.

One grammar serves every entry without a code handler: options are read the
way getopt_long reads them (bundles ``-abc``, glued values ``-ofile``,
``--long=value``, any unambiguous prefix of a long option, ``--`` ends them,
options may follow operands unless the entry says they stop at the first),
or the Windows way (``/opt``, ``-opt``, ``/opt:value``, any case). What each
option and operand does comes from the entry (see ``specs_schema.py``):
write options and write operands become written paths, exec and shell
options nested commands, network options and url operands addresses, and an
option the entry does not list follows its ``unknown_options`` rule.

Handlers (code for grammars that need it) receive the same entry and may
call :func:`options_of` and :func:`generic` for the parts that are plain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from statetrace_guard.classify.knowledge import VALUED, Operand, ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    Verdict,
    may_be_option,
    read,
)
from statetrace_guard.levels import Effect

__all__ = [
    "PLACEHOLDER",
    "Handler",
    "Judge",
    "Parsed",
    "combine",
    "generic",
    "options_of",
    "resolve_long",
]

Judge = Callable[[ProgramEntry, str, tuple[Word, ...], ClassifyContext], Verdict]
# A code handler: the entry, the name, the words after it, where, and the
# full judge (for entries it hands on, e.g. a git subcommand's).
Handler = Callable[
    [ProgramEntry, str, tuple[Word, ...], ClassifyContext, Judge], Verdict
]
# What a program appends to a command it runs (a file it found): unknown.
PLACEHOLDER = Word("{input}", static=False)
# Operand kinds that add nothing to a verdict (the common "read*" case).
_INERT = frozenset({"read", "value"})
_STRICTNESS = ("flag", "optional", "value", "read", "network", "write", "command",
               "exec", "shell", "code", "dynamic")  # fmt: skip


@dataclass(slots=True, repr=False)
class Parsed:
    """A command's words sorted into options (with values) and operands."""

    options: list[tuple[str, str, Word | None]] = field(default_factory=list)
    operands: list[Word] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rest_at: int | None = None  # index in args where operands start, if stopped

    @property
    def present(self) -> set[str]:
        """The canonical spellings of the options given."""
        return {spelling for _, spelling, _ in self.options}


def resolve_long(entry: ProgramEntry, name: str) -> tuple[str, str] | None:
    """Resolve ``--name`` (exact or an unambiguous prefix) to (kind, spelling).

    NOTE(registry): getopt_long accepts any unambiguous prefix (``--in-pl``
    for ``--in-place``). An ambiguous prefix is refused by getopt, but only
    among the program's real options, which the entry may not all list: it
    resolves here to the strictest candidate.
    """
    kind = entry.kinds.get(name)
    if kind is not None:
        return kind, name
    hits = [long for long in entry.longs if long.startswith(name)]
    if not hits:
        return None
    best = max(hits, key=lambda long: _STRICTNESS.index(entry.kinds[long]))
    return entry.kinds[best], best


def options_of(
    entry: ProgramEntry, args: Sequence[Word], *, stop_at_operand: bool = False
) -> Parsed:
    """Sort ``args`` into options and operands by the entry's grammar.

    Args:
        entry: the program's entry (its option kinds and style).
        args: the words after the program name.
        stop_at_operand: stop at the first operand (a subcommand follows),
            whatever the entry says.

    Returns:
        The options found (kind, spelling, value), the operands, and the
        problems that make the command ``dynamic`` (an unlisted option where
        the entry says unlisted options are dynamic, a word that may expand
        to an option).
    """
    parsed = Parsed()
    stop = stop_at_operand or entry.stop_at_operand
    i = 0
    ended = entry.style == "none"
    while i < len(args):
        word = args[i]
        i += 1
        text = word.text
        if ended or not _looks_like_option(word, entry.style):
            unsure = not word.static and may_be_option(word) and not ended
            if unsure and (entry.effectful or entry.unknown_dynamic):
                parsed.problems.append(f"{entry.name}: {text} may expand to an option")
            parsed.operands.append(word)
            if stop:
                parsed.rest_at = i - 1
                parsed.operands.extend(args[i:])
                return parsed
            continue
        if text == "--" and entry.style != "windows":
            ended = True
            continue
        if entry.style == "windows":
            _windows_option(entry, text, parsed)
        elif entry.style == "long" or text.startswith("--"):
            i = _long_option(entry, args, i, parsed)
        else:
            i = _short_bundle(entry, args, i, parsed)
    return parsed


def _looks_like_option(word: Word, style: str) -> bool:
    text = word.text
    if not word.static or len(text) < 2:  # noqa: PLR2004 - "-" alone is stdin
        return False
    if style == "windows":
        return text[0] in "/-"
    return text[0] == "-"


def _long_option(
    entry: ProgramEntry, args: Sequence[Word], i: int, parsed: Parsed
) -> int:
    """``--name``, ``--name=value`` (or ``-name`` for the long style)."""
    text = args[i - 1].text
    name, eq, value = text.partition("=")
    key = name.lstrip("-") if entry.style == "long" else name
    found = resolve_long(entry, key) if entry.style != "long" else _exact(entry, key)
    if found is None:
        _unknown(entry, name, parsed)
        return i
    kind, spelling = found
    given: Word | None = Word(value, args[i - 1].static) if eq else None
    if kind in VALUED and not eq:
        given = args[i] if i < len(args) else None
        i += 1
    parsed.options.append((kind, spelling, given))
    return i


def _exact(entry: ProgramEntry, key: str) -> tuple[str, str] | None:
    kind = entry.kinds.get(key)
    return None if kind is None else (kind, key)


def _short_bundle(
    entry: ProgramEntry, args: Sequence[Word], i: int, parsed: Parsed
) -> int:
    """``-abc``, ``-ofile``, ``-o file``; a listed multi-letter ``-TT`` is one."""
    text = args[i - 1].text
    whole = entry.kinds.get(text)
    if whole is not None and len(text) > 2:  # noqa: PLR2004 - "-x" is a bundle of one
        given = None
        if whole in VALUED:
            given = args[i] if i < len(args) else None
            i += 1
        parsed.options.append((whole, text, given))
        return i
    for j in range(1, len(text)):
        spelling = "-" + text[j]
        kind = entry.kinds.get(spelling)
        if kind is None:
            _unknown(entry, spelling, parsed)
            continue
        rest = text[j + 1 :]
        if kind in VALUED:
            given = Word(rest) if rest else (args[i] if i < len(args) else None)
            if not rest:
                i += 1
            parsed.options.append((kind, spelling, given))
            return i
        if kind == "optional":
            parsed.options.append((kind, spelling, Word(rest) if rest else None))
            return i
        parsed.options.append((kind, spelling, None))
    return i


def _windows_option(entry: ProgramEntry, text: str, parsed: Parsed) -> None:
    """``/Query``, ``-urlcache``, ``/grant:r``: lower case, value after ``:``."""
    body = text[1:]
    name, colon, value = body.partition(":")
    key = name.lower()
    kind = entry.kinds.get(key)
    if kind is None:
        _unknown(entry, text, parsed)
        return
    parsed.options.append((kind, key, Word(value) if colon else None))


def _unknown(entry: ProgramEntry, spelling: str, parsed: Parsed) -> None:
    if entry.unknown_dynamic:
        parsed.problems.append(
            f"{entry.name} {spelling}: an option the registry does not list"
        )


@dataclass(slots=True, repr=False)
class _Acc:
    effects: set[Effect]
    reasons: list[str]
    writes: list[Word] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    nested: list[tuple[Word, ...]] = field(default_factory=list)
    scripts: list[Word] = field(default_factory=list)
    script: str | None = None


# A plain entry's verdict never changes: one immutable Verdict per entry.
_PLAIN_VERDICTS: dict[ProgramEntry, Verdict] = {}
_PLAIN_KEPT = 4096


def generic(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """Judge a command by its entry alone (no handler).

    Args:
        entry: the program's compiled entry.
        name: the program name as the command gave it (canonical form).
        args: the words after the name.
        ctx: where it runs (for script paths).
        judge: the full judge, for subcommands that have handlers.

    Returns:
        The verdict: effects, written paths, addresses, nested commands.
    """
    if (
        len(args) == 1
        and args[0].static
        and _key(entry, args[0].text) in entry.versions
    ):
        return read(entry.spec, f"{name} {args[0].text} prints its version or help")
    if entry.plain:  # nothing it is given can change what it does
        found = _PLAIN_VERDICTS.get(entry)
        if found is None:
            why = entry.reason or f"{entry.name} only reads"
            found = Verdict(entry.effects, entry.spec, (why,), hint=entry.hint)
            if len(_PLAIN_VERDICTS) < _PLAIN_KEPT:
                _PLAIN_VERDICTS[entry] = found
        return found
    if entry.subcommands:
        return _with_subcommand(entry, name, args, ctx, judge)
    parsed = options_of(entry, args)
    return verdict_of(entry, parsed, ctx)


def _key(entry: ProgramEntry, text: str) -> str:
    if entry.style == "windows":
        return text.lstrip("/-").lower()
    return text.lstrip("-") if entry.style == "long" else text


def _with_subcommand(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``git -C x log ...``: the parent's options, then the subcommand's entry."""
    parsed = options_of(entry, args, stop_at_operand=True)
    if parsed.rest_at is None:
        return verdict_of(entry, parsed, ctx)
    word = args[parsed.rest_at]
    rest = args[parsed.rest_at + 1 :]
    key = word.text.lower() if entry.style == "windows" else word.text
    if not word.static:
        found = Verdict(DYNAMIC, entry.spec, (f"{name}: the subcommand is not static",))
    elif key in entry.subcommands:
        found = judge(entry.subcommands[key], name, rest, ctx)
    elif entry.unknown_subcommand_dynamic:
        why = f"{name} {word.text}: not a subcommand the registry knows"
        found = Verdict(DYNAMIC, entry.spec, (why,))
    else:  # an ordinary operand: the entry judges the command itself
        return verdict_of(entry, options_of(entry, args), ctx)
    if not parsed.options and not parsed.problems:
        return found
    own = verdict_of(entry, Parsed(parsed.options, [], parsed.problems), ctx)
    return combine((found, _replace_effects(own, own.effects - entry.effects)))


def _replace_effects(verdict: Verdict, effects: frozenset[Effect]) -> Verdict:
    """The parent's options add only what they do, not the parent's own effects."""
    return Verdict(
        effects or READ,
        verdict.spec,
        verdict.reasons[1:],
        verdict.writes,
        verdict.urls,
        verdict.script,
        verdict.nested,
        verdict.scripts,
        verdict.env_sets,
        verdict.hint,
    )


def verdict_of(entry: ProgramEntry, parsed: Parsed, ctx: ClassifyContext) -> Verdict:
    """Turn parsed options and operands into the entry's verdict."""
    present = parsed.present
    mode = next((m for m in entry.modes if m.options & present), None)
    effects = set(mode.effects if mode is not None else entry.effects)
    reason = (mode.reason if mode is not None and mode.reason else entry.reason) or (
        f"{entry.name}: " + ", ".join(sorted(e.value for e in effects))
    )
    acc = _Acc(effects, [reason, *parsed.problems])
    if parsed.problems:
        acc.effects.add(Effect.DYNAMIC)
    for kind, spelling, value in parsed.options:
        _option(acc, entry, kind, spelling, value)
    pattern = (
        mode.operands
        if mode is not None and mode.operands is not None
        else entry.operands
    )
    if parsed.operands and any(item.kind not in _INERT for item in pattern):
        _operands(acc, entry, pattern, parsed.operands, ctx)
    if acc.writes:
        acc.effects.add(Effect.WRITE)
    default = (
        mode.default_write
        if mode is not None and mode.default_write
        else entry.default_write
    )
    if Effect.WRITE in acc.effects and not acc.writes and default:
        acc.writes.append(Word(default))
    if acc.urls:
        acc.effects.add(Effect.NETWORK)
    return Verdict(
        frozenset(acc.effects),
        entry.spec,
        tuple(dict.fromkeys(acc.reasons)),
        tuple(acc.writes),
        tuple(acc.urls),
        acc.script,
        tuple(acc.nested),
        tuple(acc.scripts),
        hint=entry.hint,
    )


def _option(
    acc: _Acc, entry: ProgramEntry, kind: str, spelling: str, value: Word | None
) -> None:
    if kind == "write" and value is not None:
        acc.writes.append(value)
    elif kind == "network" and value is not None:
        acc.urls.append(value.text)
    elif kind == "command":
        if value is None:
            acc.effects.add(Effect.DYNAMIC)
        else:
            acc.scripts.append(value)
            acc.reasons.append(f"{entry.name} {spelling} runs a shell command")
    elif kind in ("exec", "shell"):
        acc.effects.add(Effect.DYNAMIC)
        acc.reasons.append(
            f"{entry.name} {spelling} runs a program the guard does not follow"
        )
    elif kind in ("code", "dynamic"):
        acc.effects.add(Effect.DYNAMIC)
        acc.reasons.append(
            f"{entry.name} {spelling}: runs or loads what cannot be known"
        )


def _operands(
    acc: _Acc,
    entry: ProgramEntry,
    pattern: tuple[Operand, ...],
    operands: list[Word],
    ctx: ClassifyContext,
) -> None:
    for index, (kind, word, rest) in enumerate(_assign(pattern, operands)):
        if kind == "command" and not all(w.static for w in operands[:index]):
            # `timeout $T cmd`: $T may split into words that shift the command.
            acc.effects.add(Effect.DYNAMIC)
            acc.reasons.append(f"{entry.name}: a word before its command is not static")
            return
        if kind == "write":
            acc.writes.append(word)
        elif kind == "url":
            acc.urls.append(word.text)
        elif kind == "command":
            _wrapped(acc, entry, (word, *rest))
            return
        elif kind == "shell":
            acc.scripts.append(word)
        elif kind == "script":
            _script(acc, entry, word, ctx)
        elif kind == "dynamic":
            acc.effects.add(Effect.DYNAMIC)
            acc.reasons.append(
                f"{entry.name} {word.text}: changes what cannot be bounded"
            )


def _wrapped(acc: _Acc, entry: ProgramEntry, command: tuple[Word, ...]) -> None:
    """The wrapped command; ``flock FILE -c CMD`` puts a command option there."""
    head = command[0]
    if head.static and entry.kinds.get(head.text) == "command":
        if len(command) < 2:  # noqa: PLR2004 - the option and its value
            acc.effects.add(Effect.DYNAMIC)
            return
        acc.scripts.append(command[1])
        acc.reasons.append(f"{entry.name} {head.text} runs a shell command")
        return
    acc.nested.append(command)
    acc.reasons.append(f"{entry.name} runs the command it wraps")


def _script(acc: _Acc, entry: ProgramEntry, word: Word, ctx: ClassifyContext) -> None:
    from statetrace_guard.classify.paths import normalize_script_path  # noqa: PLC0415

    acc.effects.add(Effect.DYNAMIC)
    acc.script = normalize_script_path(word.text, ctx) if word.static else None
    acc.reasons.append(f"{entry.name} runs the script {word.text}")


def _assign(
    pattern: tuple[Operand, ...], operands: list[Word]
) -> list[tuple[str, Word, list[Word]]]:
    """Match operands to a pattern: fixed items at both ends, the variadic between.

    Returns (kind, word, the words after it) per operand; an operand beyond
    the pattern is read. Fewer operands than the pattern fill it in order.
    """
    if not pattern:
        return [("read", w, operands[i + 1 :]) for i, w in enumerate(operands)]
    many = next((i for i, item in enumerate(pattern) if item.many), None)
    kinds: list[str]
    if many is None:
        kinds = [item.kind for item in pattern][: len(operands)]
        kinds += ["read"] * (len(operands) - len(kinds))
    else:
        head = [item.kind for item in pattern[:many]]
        tail = [item.kind for item in pattern[many + 1 :] if not item.optional]
        middle = max(0, len(operands) - len(head) - len(tail))
        kinds = (head + [pattern[many].kind] * middle + tail)[: len(operands)]
        kinds += ["read"] * (len(operands) - len(kinds))
    return [
        (kind, w, operands[i + 1 :])
        for i, (kind, w) in enumerate(zip(kinds, operands, strict=True))
    ]


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """Add verdicts up: every effect, path, address and nested command.

    The first verdict names the spec. ``write`` without a target in one
    verdict is kept (it came from that verdict's own reasoning).
    """
    first = verdicts[0]
    if len(verdicts) == 1:
        return first
    effects: set[Effect] = set()
    for verdict in verdicts:
        effects |= verdict.effects
    return Verdict(
        frozenset(effects),
        first.spec,
        tuple(dict.fromkeys(r for v in verdicts for r in v.reasons)),
        tuple(w for v in verdicts for w in v.writes),
        tuple(u for v in verdicts for u in v.urls),
        next((v.script for v in verdicts if v.script), None),
        tuple(n for v in verdicts for n in v.nested),
        tuple(s for v in verdicts for s in v.scripts),
        tuple(e for v in verdicts for e in v.env_sets),
        next((v.hint for v in verdicts if v.hint), None),
    )
