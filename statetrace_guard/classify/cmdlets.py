"""Argument-aware specs for PowerShell's built-in cmdlets and their aliases.

Each spec names the cmdlet's parameters the way PowerShell binds them (named,
abbreviated to any unambiguous prefix, or by position), which of them are
written paths, URLs or script blocks, and the cmdlet's own effect. The walker
in ``powershell.py`` turns the parse into :class:`Arg` values; :func:`judge`
binds them and returns an :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from statetrace_guard.classify import dotnet
from statetrace_guard.classify.environment import dangerous_env, redirects_writes
from statetrace_guard.classify.knowledge import Cmdlet, Knowledge
from statetrace_guard.levels import Effect

__all__ = [
    "Arg",
    "ArgKind",
    "Bound",
    "Outcome",
    "bind",
    "canonical_name",
    "is_unc",
    "judge",
    "provider_env_name",
]

ArgKind = Literal["param", "word", "block", "splat", "expr"]

_COMMON_ALIASES = {"ea": "erroraction", "ev": "errorvariable", "ov": "outvariable"}
_REMOTE_PARAMS = frozenset(
    {
        "computername",
        "cn",
        "session",
        "cimsession",
        "connectionuri",
        "hostname",
        "vmname",
        "vmid",
        "containerid",
        "tosession",
        "fromsession",
    }
)
_REMOTE_PREFIXED = ("computername", "cimsession", "connectionuri", "tosession")
_MIN_PREFIX = 4
_FS_DRIVE_LEN = 1  # "C:" is a file system drive; longer names are providers
_PROTECTED_DRIVES = frozenset({"function", "alias"})


@dataclass(frozen=True, slots=True)
class Arg:
    """One command element after quote and escape removal.

    ``text`` is the value (array elements joined with ``,``) or the source
    text when ``static`` is False; ``values`` holds the array elements.
    """

    text: str
    static: bool
    kind: ArgKind = "word"
    values: tuple[str, ...] = ()
    colon: bool = False  # "-Name:value": the next element is the value

    @property
    def items(self) -> tuple[str, ...]:
        """The array elements, or the text alone."""
        return self.values or (self.text,)


@dataclass(frozen=True, slots=True)
class Bound:
    """Arguments bound to a spec's parameters."""

    named: Mapping[str, tuple[Arg, ...]]
    positional: tuple[Arg, ...]
    unknown: tuple[str, ...]
    splat: bool
    switches: frozenset[str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one cmdlet call does."""

    effects: frozenset[Effect]
    spec: str
    reasons: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    env_sets: tuple[str, ...] = ()
    script: str | None = None
    aliases: tuple[tuple[str, str], ...] = field(default=())


_PROVIDER_PREFIX = ("filesystem::", "microsoft.powershell.core\\filesystem::")


def is_unc(path: str) -> bool:
    r"""``\\host\share``, ``//host/share``, ``FileSystem::\\host\share``: network."""
    text = path.strip("'\"")
    if ":" in text[:40]:
        head = text[:40].lower()
        for prefix in _PROVIDER_PREFIX:
            if head.startswith(prefix):
                text = text[len(prefix) :]
                break
    return text.startswith(("\\\\", "//")) and len(text) > 2  # noqa: PLR2004


def canonical_name(name: str, knowledge: Knowledge) -> str:
    """Return the cmdlet a (lower-case) name or alias stands for."""
    return knowledge.cmdlet_name(name) or name


def _match_param(token: str, spec: Cmdlet) -> str | None:
    """Resolve ``token`` (no dash, lower case) to a parameter name, by prefix."""
    if token in spec.all_params:
        return token
    alias = spec.aliases.get(token) or _COMMON_ALIASES.get(token)
    if alias is not None:
        return alias
    hits = [p for p in spec.all_params if p.startswith(token)]
    return hits[0] if len(hits) == 1 else None


def _take_value(args: Sequence[Arg], index: int) -> Arg | None:
    """Return the argument at ``index`` unless it is a parameter."""
    if index < len(args) and args[index].kind != "param":
        return args[index]
    return None


def bind(spec: Cmdlet, args: Sequence[Arg]) -> Bound:
    """Bind arguments to the spec's parameters as PowerShell would."""
    named: dict[str, tuple[Arg, ...]] = {}
    positional: list[Arg] = []
    unknown: list[str] = []
    switches: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.kind != "param":
            positional.append(arg)
            continue
        token = arg.text.lstrip("-\u2013\u2014\u2015").rstrip(":").lower()
        name = _match_param(token, spec)
        takes_value = arg.colon or (name is None) or name not in spec.switch_set
        value = _take_value(args, i) if takes_value else None
        if value is not None:
            i += 1
        if name is None:
            unknown.append(token)
        elif value is None:
            switches.add(name)
        else:
            named[name] = (*named.get(name, ()), value)
    return _finish_bind(spec, named, positional, unknown, switches)


def _finish_bind(
    spec: Cmdlet,
    named: dict[str, tuple[Arg, ...]],
    positional: list[Arg],
    unknown: list[str],
    switches: set[str],
) -> Bound:
    """Assign positional arguments to the parameters not yet bound by name."""
    free = [p for p in spec.positional if p not in named]
    rest: list[Arg] = []
    splat = False
    for arg in positional:
        if arg.kind == "splat":
            splat = True
        elif free:
            named[free.pop(0)] = (arg,)
        else:
            rest.append(arg)
    return Bound(named, tuple(rest), tuple(unknown), splat, frozenset(switches))


def provider_env_name(path: str) -> str | None:
    r"""Return NAME for an ``Env:NAME`` / ``env:\\NAME`` path, else ``None``."""
    drive, sep, rest = path.partition(":")
    if not sep or drive.lower() != "env":
        return None
    return rest.lstrip("\\/") or None


@dataclass(slots=True)
class _Acc:
    """Accumulates one outcome while the rules run."""

    effects: set[Effect]
    reasons: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    env_sets: list[str] = field(default_factory=list)
    script: str | None = None
    aliases: list[tuple[str, str]] = field(default_factory=list)

    def add(self, effect: Effect, reason: str) -> None:
        """Add an effect with the sentence that explains it."""
        self.effects.add(effect)
        self.reasons.append(reason)


def _write_target(acc: _Acc, target: str) -> None:
    """Record one written path, sorting out PowerShell provider drives."""
    env = provider_env_name(target)
    if env is not None:
        _variable_set(acc, env, env=True)
        return
    drive, sep, _ = target.partition(":")
    is_provider = (
        sep and len(drive) > _FS_DRIVE_LEN and drive.isalnum() and "/" not in drive
    )
    if is_provider and drive.lower() in _PROTECTED_DRIVES:
        acc.add(Effect.DYNAMIC, f"redefines a command through {drive}:")
        return
    if is_provider and drive.lower() == "variable":
        _variable_set(acc, target.partition(":")[2].lstrip("\\/"), env=False)
        return
    # NOTE(pwsh): registry, certificate and WSMan drives (HKCU:, Cert:) stay
    # as written: the decision places any drive-qualified path outside.
    acc.writes.append(target)
    acc.add(Effect.WRITE, f"writes {target}")


_STEERING_VARIABLES = frozenset({"psdefaultparametervalues"})
_VARIABLE_SCOPES = frozenset({"global", "script", "local", "private", "variable"})


def _variable_set(acc: _Acc, raw: str, *, env: bool) -> None:
    """Record a set (or removal) of variable ``raw``; ``env`` for Env: names.

    A wildcard (``Remove-Item Env:STATE*``) could match guard's variables;
    so could a name known only at run time.
    """
    name = raw
    scope, sep, rest = name.partition(":")
    while sep and scope.lower() in _VARIABLE_SCOPES:
        name = rest
        scope, sep, rest = name.partition(":")
    if sep and scope.lower() == "env":
        name, env = rest.lstrip("\\/"), True
    acc.env_sets.append(name)
    if any(mark in name for mark in "*?[$`"):
        acc.add(Effect.DYNAMIC, f"sets or clears variables matching {name}")
    elif name.lower() in _STEERING_VARIABLES or (env and _hijacks(name.upper())):
        acc.add(Effect.DYNAMIC, f"{name} changes what later commands do")


def _hijacks(name: str) -> bool:
    """An environment variable that steers later programs (PATH, GIT_*...).

    The one table says which (the operator's opt-ins are plain there: the
    decision judges them through env_sets).
    """
    return dangerous_env(name)


def _redirected_writes(acc: _Acc, bound: Bound) -> None:
    """``Set-Item Env:TMP -Value D``: later programs write into ``D``."""
    names = [n for n in acc.env_sets if redirects_writes(n.upper())]
    if not names:
        return
    value = _first(bound, "value")
    if value is None or not value.static:
        acc.add(Effect.DYNAMIC, f"{names[0]} is set to a path known only at run time")
        return
    for item in value.items:
        acc.writes.append(item)
        acc.add(Effect.WRITE, f"{names[0]} sends later writes to {item}")


def _h_variable(acc: _Acc, bound: Bound, _spec: Cmdlet, _knowledge: Knowledge) -> None:
    """Set-Variable/New-Variable/Remove-Variable ``-Name``: names what changes."""
    arg = _first(bound, "name")
    if arg is None or not arg.static:
        acc.add(Effect.DYNAMIC, "changes a variable named at run time")
        return
    for item in arg.items:
        _variable_set(acc, item, env=False)


def _collect_writes(acc: _Acc, spec: Cmdlet, bound: Bound) -> None:
    """Turn the written-path parameters into writes."""
    found = False
    for param in spec.writes:
        for arg in bound.named.get(param, ()):
            found = True
            if not arg.static:
                acc.writes.append(arg.text)
                acc.add(Effect.WRITE, f"writes a path known only at run time ({param})")
                acc.add(Effect.DYNAMIC, f"-{param} is not static: target unknown")
                continue
            for item in arg.items:
                _write_target(acc, item)
    if found:
        return
    if spec.default_write is not None:
        _write_target(acc, spec.default_write)
    elif Effect.WRITE in spec.effects:
        # NOTE(pwsh): ``gci Logs | Remove-Item`` binds the path from the
        # pipeline: the target is not in the command line.
        acc.add(Effect.DYNAMIC, "the written path comes from the pipeline")


def _collect_urls(acc: _Acc, spec: Cmdlet, bound: Bound, args: Sequence[Arg]) -> None:
    """Record URLs and hosts from URL parameters and UNC paths anywhere."""
    for param in spec.urls:
        for arg in bound.named.get(param, ()):
            acc.urls.extend(arg.items)
    for arg in args:
        if arg.kind != "word" or not arg.static:
            continue
        for item in arg.items:
            if is_unc(item):
                acc.urls.append(item)
                acc.add(Effect.NETWORK, f"{item} is a network (UNC) path")


def _remote(acc: _Acc, args: Sequence[Arg]) -> None:
    """Parameters that point a cmdlet at another machine mean network."""
    for arg in args:
        if arg.kind != "param":
            continue
        token = arg.text.lstrip("-\u2013\u2014\u2015").rstrip(":").lower()
        prefix = len(token) >= _MIN_PREFIX and any(
            p.startswith(token) for p in _REMOTE_PREFIXED
        )
        if token in _REMOTE_PARAMS or prefix:
            acc.add(Effect.NETWORK, f"-{token} reaches another machine")


def judge(
    name: str, args: Sequence[Arg], knowledge: Knowledge, written: str = ""
) -> Outcome | None:
    """Classify a call of the built-in cmdlet ``name`` (canonical, lower case).

    Args:
        name: the canonical cmdlet name.
        args: the command's elements after the name.
        knowledge: the registry (cmdlet entries, .NET types).
        written: the name as written, lower case (``sc`` differs by edition).

    Returns:
        The outcome, or ``None`` when ``name`` is not a known cmdlet.
    """
    spec = knowledge.cmdlet(name)
    if spec is None:
        return None
    bound = bind(spec, args)
    acc = _Acc(set(spec.effects), [f"{name}: {spec.why}"] if spec.why else [])
    if bound.splat and not spec.splat_safe:
        acc.add(Effect.DYNAMIC, "splatting (@args) hides the parameters")
    if bound.unknown and (spec.writes or spec.special):
        unknown = ", ".join(bound.unknown)
        acc.add(Effect.DYNAMIC, f"unknown parameter(s) -{unknown} on {name}")
    _collect_writes(acc, spec, bound)
    _switch_effects(acc, spec, bound)
    if acc.env_sets and not acc.writes and Effect.WRITE in acc.effects:
        acc.effects.discard(Effect.WRITE)  # Env:NAME only: a variable, no file
        acc.effects.add(Effect.READ)
        _redirected_writes(acc, bound)
    _collect_urls(acc, spec, bound, args)
    _remote(acc, args)
    handler = _SPECIAL.get(spec.special)
    if handler is not None:
        handler(acc, bound, spec, knowledge)
    if written == "sc":
        _h_sc(acc, bound, spec, knowledge)
    if "whatif" in bound.switches and acc.effects & _SHOULD_PROCESS:
        # NOTE(pwsh): -WhatIf describes the change and makes none.
        acc.effects = {Effect.READ}
        acc.writes.clear()
        acc.reasons.append(f"{name} -WhatIf changes nothing")
    return Outcome(
        frozenset(acc.effects),
        spec.spec,
        tuple(acc.reasons),
        tuple(acc.writes),
        tuple(acc.urls),
        tuple(acc.env_sets),
        acc.script,
        tuple(acc.aliases),
    )


_SHOULD_PROCESS = frozenset({Effect.WRITE, Effect.DYNAMIC, Effect.INSTALL})


def _switch_effects(acc: _Acc, spec: Cmdlet, bound: Bound) -> None:
    """Switches that reach the network, and script blocks kept for later."""
    for switch in bound.switches & spec.network_switches:
        acc.add(Effect.NETWORK, f"-{switch} reaches the network")
    for switch in bound.switches & spec.dynamic_switches:
        acc.add(Effect.DYNAMIC, f"-{switch} does what cannot be known")
    for param in spec.code:
        if param in bound.named:
            acc.add(Effect.DYNAMIC, f"-{param} keeps code that runs later")


def _first(bound: Bound, *params: str) -> Arg | None:
    """Return the first argument bound to any of ``params``."""
    for param in params:
        got = bound.named.get(param)
        if got:
            return got[0]
    return None


def _block_params(acc: _Acc, bound: Bound, params: Sequence[str]) -> None:
    """A script block given as a variable or expression runs unknown code."""
    for param in params:
        for arg in bound.named.get(param, ()):
            if arg.kind != "block":
                acc.add(Effect.DYNAMIC, f"-{param} is not a literal script block")


def _h_foreach(acc: _Acc, bound: Bound, spec: Cmdlet, _knowledge: Knowledge) -> None:
    """``% Name`` reads a property; ``% Delete`` calls a method: unknown."""
    _block_params(acc, bound, ("begin", "end", "remainingscripts", "parallel"))
    for arg in bound.named.get("process", ()):
        if arg.kind == "block":
            continue
        member = arg.text.lower()
        if arg.static and member in spec.data.get("pure_members", ()):
            continue
        acc.add(Effect.DYNAMIC, f"ForEach-Object calls member {arg.text!r}")
    member_arg = _first(bound, "membername")
    if member_arg is not None and member_arg.text.lower() not in spec.data.get(
        "pure_members", ()
    ):
        acc.add(Effect.DYNAMIC, f"ForEach-Object calls member {member_arg.text!r}")


def _h_where(acc: _Acc, bound: Bound, _spec: Cmdlet, _knowledge: Knowledge) -> None:
    """A filter given as a variable runs unknown code."""
    arg = _first(bound, "filterscript")
    if arg is not None and arg.kind not in {"block", "word"}:
        acc.add(Effect.DYNAMIC, "Where-Object filter is not a literal script block")


def _h_job(acc: _Acc, bound: Bound, _spec: Cmdlet, _knowledge: Knowledge) -> None:
    """Jobs and Invoke-Command run a block (classified apart) or a file."""
    _block_params(acc, bound, ("scriptblock", "initializationscript"))
    path = _first(bound, "filepath", "literalpath")
    if path is not None:
        acc.add(Effect.DYNAMIC, f"runs the script {path.text}")
        acc.script = path.text if path.static else None


def _h_new_object(acc: _Acc, bound: Bound, _spec: Cmdlet, knowledge: Knowledge) -> None:
    """New-Object: the type decides; COM objects can do anything."""
    if _first(bound, "comobject") is not None:
        acc.add(Effect.DYNAMIC, "New-Object -ComObject can do anything")
        return
    type_arg = _first(bound, "typename")
    if type_arg is None or not type_arg.static:
        acc.add(Effect.DYNAMIC, "New-Object of a type known only at run time")
        return
    effect = dotnet.new_object_effect(type_arg.text, knowledge)
    acc.add(effect, f"New-Object {type_arg.text}: {effect.value}")


def _h_import_module(
    acc: _Acc, bound: Bound, spec: Cmdlet, _knowledge: Knowledge
) -> None:
    """Importing a module runs its code unless it is a known built-in one."""
    arg = _first(bound, "name", "fullyqualifiedname")
    if arg is None or not arg.static:
        acc.add(Effect.DYNAMIC, "imports a module known only at run time")
        return
    for item in arg.items:
        lowered = item.lower()
        builtin = spec.data.get("builtin_modules", ())
        if lowered in builtin or lowered.startswith("microsoft.powershell."):
            continue
        if any(mark in item for mark in ("/", "\\", ".ps", ".dll")):
            acc.script = item
            acc.add(Effect.DYNAMIC, f"imports (runs) the module file {item}")
        else:
            acc.add(Effect.DYNAMIC, f"imports the module {item}: its code runs")


def _h_alias(acc: _Acc, bound: Bound, _spec: Cmdlet, _knowledge: Knowledge) -> None:
    """Set-Alias: later calls of the alias run its target."""
    name = _first(bound, "name")
    value = _first(bound, "value")
    if name is None or value is None or not (name.static and value.static):
        acc.add(Effect.DYNAMIC, "defines an alias known only at run time")
        return
    acc.aliases.append((name.text.lower(), value.text.lower()))


def _h_sc(acc: _Acc, bound: Bound, _spec: Cmdlet, knowledge: Knowledge) -> None:
    """``sc`` is Set-Content in 5.1 but sc.exe (service control) in pwsh 7.

    A first argument that is one of sc.exe's verbs (the ``windows`` entry's
    subcommands) means the caller meant sc.exe.
    """
    first = _first(bound, "path")
    found = knowledge.programs("windows", "sc")
    verbs = found[0].subcommands if found else {}
    if first is not None and first.text.lower() in verbs:
        acc.writes.append("service:" + first.text)
        acc.add(Effect.DYNAMIC, "sc is sc.exe (service control) in PowerShell 7")


_SPECIAL = {
    "foreach": _h_foreach,
    "where": _h_where,
    "job": _h_job,
    "new-object": _h_new_object,
    "import-module": _h_import_module,
    "alias": _h_alias,
    "variable": _h_variable,
}
