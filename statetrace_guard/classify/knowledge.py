"""The compiled registry: what the classifier looks programs up in.

The registry's documents (``specs/*.toml`` after validation, plus a policy's
``[[programs]]``) arrive as plain dictionaries with every key present (see
:mod:`statetrace_guard.classify.registry`). Here they are indexed by name
once and each entry is compiled into frozen values the first time a command
names it: a helper serving many commands compiles each program once, and a
one-off ``guard run`` compiles only the few it meets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from statetrace_guard.classify.trusted import DEFAULT_TRUSTED_DIRS
from statetrace_guard.levels import Effect

__all__ = [
    "Cmdlet",
    "DotnetType",
    "Knowledge",
    "Mode",
    "Operand",
    "ProgramEntry",
    "RegistryError",
    "VariableRule",
]

_KIND_OF_LIST = {
    "flags": "flag",
    "value_options": "value",
    "optional_value_options": "optional",
    "read_options": "read",
    "write_options": "write",
    "exec_options": "exec",
    "shell_options": "shell",
    "command_options": "command",
    "network_options": "network",
    "code_options": "code",
    "dynamic_flags": "dynamic",
}
# Option kinds that take a value in the next word or glued.
VALUED = frozenset(
    {"value", "read", "write", "exec", "shell", "command", "network", "code"}
)
# Option kinds that can make a read-only program do more than read.
_EFFECTFUL = frozenset(
    {"write", "exec", "shell", "command", "network", "code", "dynamic"}
)


# Namespaces whose names match in any case (Windows, PowerShell, .NET).
_ANY_CASE = frozenset({"pwsh", "windows", "cmd", "dotnet"})


class RegistryError(Exception):
    """The registry's data is inconsistent (a duplicate name, an unknown key)."""


# NOTE(speed): the small records are NamedTuples and the compiled entries
# plain slotted classes: a frozen dataclass compiles per-field setattr code
# at every process start (exec of generated source), which a short-lived
# `guard check` pays before its first command. Entries are never changed
# once compiled.
class Operand(NamedTuple):
    """One item of an operand pattern: a kind and a quantifier."""

    kind: str
    many: bool  # * or +
    optional: bool  # * or ?


class Mode(NamedTuple):
    """A variant chosen by an option (``gzip -c`` only reads)."""

    options: frozenset[str]
    effects: frozenset[Effect]
    reason: str
    operands: tuple[Operand, ...] | None
    default_write: str | None


@dataclass(slots=True, eq=False, repr=False)
class ProgramEntry:
    """One program (or subcommand) compiled for the option engine.

    ``kinds`` maps every listed option spelling to its kind (``flag``,
    ``value``, ``optional``, ``read``, ``write``, ``exec``, ``shell``,
    ``network``, ``code``, ``dynamic``); Windows-style spellings are lower
    case without the leading ``/`` or ``-``.
    """

    spec: str
    name: str
    reason: str
    effects: frozenset[Effect]
    handler: str | None
    style: str
    stop_at_operand: bool
    unknown_dynamic: bool
    kinds: Mapping[str, str]
    longs: tuple[str, ...]
    versions: frozenset[str]
    operands: tuple[Operand, ...]
    default_write: str | None
    modes: tuple[Mode, ...]
    subcommands: Mapping[str, ProgramEntry]
    unknown_subcommand_dynamic: bool
    hint: str | None
    data: Mapping[str, tuple[str, ...]]
    effectful: bool
    # NOTE(speed): an entry whose options and operands can change nothing
    # (cat, ls, grep, echo: most commands) answers every call with this.
    plain: bool = False

    def options_of(self, kind: str) -> tuple[str, ...]:
        """Every listed spelling of options of ``kind`` (for handlers)."""
        return tuple(name for name, found in self.kinds.items() if found == kind)


@dataclass(slots=True, eq=False, repr=False)
class Cmdlet:
    """One PowerShell cmdlet compiled for binding."""

    spec: str
    name: str
    effects: frozenset[Effect]
    why: str
    positional: tuple[str, ...]
    writes: tuple[str, ...]
    urls: tuple[str, ...]
    special: str
    default_write: str | None
    all_params: tuple[str, ...]
    switch_set: frozenset[str]
    aliases: Mapping[str, str]
    splat_safe: bool
    data: Mapping[str, tuple[str, ...]]
    code: frozenset[str]
    network_switches: frozenset[str]
    dynamic_switches: frozenset[str]


class DotnetType(NamedTuple):
    """A .NET type: the effect of its static members and of creating one."""

    static: Effect
    construct: Effect
    members: Mapping[str, Effect]


class VariableRule(NamedTuple):
    """What setting an environment variable does (``hijack``, ``plain``...)."""

    kind: str
    reason: str


def _operands(pattern: Iterable[str]) -> tuple[Operand, ...]:
    out = []
    for item in pattern:
        quant = item[-1] if item[-1] in "*+?" else ""
        kind = item[:-1] if quant else item
        out.append(
            Operand(kind, quant in "*+" and bool(quant), quant in "*?" and bool(quant))
        )
    return tuple(out)


def _option_key(spelling: str, style: str) -> str:
    if style == "windows":
        return spelling.lstrip("/-").lower()
    if style == "long":  # -name and --name are one option
        return spelling.lstrip("-")
    return spelling


Filler = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


def _as_is(_kind: str, raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return raw


def compile_program(
    raw: Mapping[str, Any],
    spec: str,
    name: str,
    parent: ProgramEntry | None = None,
    fill: Filler = _as_is,
) -> ProgramEntry:
    """Compile one validated program or subcommand document.

    ``fill`` completes a document stored without its default values.
    """
    raw = fill("subcommand" if parent is not None else "program", raw)
    style = raw["option_style"]
    # NOTE(registry): a subcommand inherits its parent's options that write,
    # run or connect (git's --output holds for git log and git diff); not its
    # value options (git's -C is a global option, git diff's -C a flag).
    kinds: dict[str, str] = (
        {k: v for k, v in parent.kinds.items() if v in _EFFECTFUL}
        if parent is not None
        else {}
    )
    for listing, kind in _KIND_OF_LIST.items():
        for spelling in raw[listing]:
            kinds[_option_key(spelling, style)] = kind
    modes = tuple(
        Mode(
            frozenset(_option_key(o, style) for o in mode["options"]),
            frozenset(Effect(e) for e in mode["effects"]),
            mode["reason"],
            None if mode["operands"] is None else _operands(mode["operands"]),
            mode["default_write"],
        )
        for mode in (fill("mode", m) for m in raw["modes"])
    )
    effectful = bool(_EFFECTFUL.intersection(kinds.values()))
    operands = _operands(raw["operands"])
    values: dict[str, Any] = {
        "spec": spec,
        "name": name,
        "reason": raw["reason"],
        "effects": frozenset(Effect(e) for e in raw["effects"]),
        "handler": raw["handler"],
        "style": style,
        "stop_at_operand": raw["options_stop_at_operand"],
        "unknown_dynamic": raw["unknown_options"] == "dynamic",
        "kinds": MappingProxyType(kinds),
        "longs": tuple(sorted(k for k in kinds if k.startswith("--"))),
        "versions": frozenset(_option_key(v, style) for v in raw["version_options"]),
        "operands": operands,
        "default_write": raw["default_write"],
        "modes": modes,
        "subcommands": MappingProxyType({}),
        "unknown_subcommand_dynamic": raw["unknown_subcommand"] == "dynamic",
        "hint": raw["hint"],
        "data": MappingProxyType(
            {key: tuple(value) for key, value in raw["handler_data"].items()}
        ),
        "effectful": effectful,
    }
    if raw["subcommands"]:
        subs = _Subcommands(spec, name, style, fill, raw["subcommands"])
        values["subcommands"] = subs
        entry = ProgramEntry(**values)
        subs.parent = entry
        return entry
    # NOTE(speed): nothing it is given can change what a plain entry does.
    values["plain"] = (
        raw["handler"] is None
        and not effectful
        and (style == "none" or raw["unknown_options"] != "dynamic")
        and not modes
        and raw["default_write"] is None
        and all(item.kind in ("read", "value") for item in operands)
    )
    return ProgramEntry(**values)


class _Subcommands(Mapping[str, ProgramEntry]):
    """A program's subcommands, each compiled the first time it is looked up.

    NOTE(speed): git has a hundred subcommand entries and a command uses one.
    """

    __slots__ = ("_compiled", "_fill", "_name", "_names", "_spec", "parent")

    def __init__(
        self,
        spec: str,
        name: str,
        style: str,
        fill: Filler,
        raw: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self._spec = spec
        self._name = name
        self._fill = fill
        self._names: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for sub_name, raw_sub in raw.items():
            for alias in (sub_name, *raw_sub.get("aliases", ())):
                key = _option_key(alias, style) if style == "windows" else alias
                self._names[key] = (sub_name, raw_sub)
        self._compiled: dict[str, ProgramEntry] = {}
        self.parent: ProgramEntry | None = None

    def __getitem__(self, key: str) -> ProgramEntry:
        sub_name, raw_sub = self._names[key]
        found = self._compiled.get(sub_name)
        if found is None:
            found = self._compiled[sub_name] = compile_program(
                raw_sub,
                f"{self._spec}-{sub_name}",
                f"{self._name} {sub_name}",
                self.parent,
                self._fill,
            )
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def compile_cmdlet(raw: Mapping[str, Any], groups: Mapping[str, Any]) -> Cmdlet:
    """Compile one validated cmdlet document; ``groups`` are its file's lists."""
    grouped = [p for group in raw["parameter_groups"] for p in groups[group]]
    common = tuple(groups.get("common", ()))
    common_switches = tuple(groups.get("common_switches", ()))
    values = dict.fromkeys(
        (
            *raw["parameters"],
            *grouped,
            *raw["positional"],
            *raw["write_parameters"],
            *raw["url_parameters"],
            *raw["code_parameters"],
        )
    )
    switches = (
        *raw["switches"],
        *raw["network_switches"],
        *raw["dynamic_switches"],
        *common_switches,
    )
    params = tuple(dict.fromkeys((*values, *switches, *common)))
    return Cmdlet(
        spec=f"pwsh:{raw['name']}",
        name=raw["name"],
        effects=frozenset(Effect(e) for e in raw["effects"]),
        why=raw["reason"],
        positional=tuple(raw["positional"]),
        writes=tuple(raw["write_parameters"]),
        urls=tuple(raw["url_parameters"]),
        special=raw["handler"] or "",
        default_write=raw["default_write"],
        all_params=params,
        switch_set=frozenset(switches),
        aliases=MappingProxyType(dict(raw["parameter_aliases"])),
        splat_safe=raw["splat_safe"],
        data=MappingProxyType(
            {key: tuple(value) for key, value in raw["handler_data"].items()}
        ),
        code=frozenset(raw["code_parameters"]),
        network_switches=frozenset(raw["network_switches"]),
        dynamic_switches=frozenset(raw["dynamic_switches"]),
    )


def compile_type(raw: Mapping[str, Any]) -> DotnetType:
    """Compile one validated .NET type document."""
    members: dict[str, Effect] = {}
    for listing, effect in (
        ("read_members", Effect.READ),
        ("write_members", Effect.WRITE),
        ("network_members", Effect.NETWORK),
        ("dynamic_members", Effect.DYNAMIC),
    ):
        members.update(dict.fromkeys(raw[listing], effect))
    return DotnetType(Effect(raw["static"]), Effect(raw["constructor"]), members)


@dataclass(eq=False, repr=False)
class Knowledge:
    """The registry one classification uses: built-in entries, a policy's own.

    A namespace is indexed the first time a command needs it, and an entry
    is compiled the first time a command names it. ``defaults`` fills the
    keys a cached document leaves out (``registry.py`` stores entries
    without their default values). ``policy_programs`` are consulted beside
    the built-in entry of the same name (both apply, the effects add up: a
    policy can add knowledge, not remove it).

    Hashed by identity: one object per policy content, so classification
    caches keyed by context stay valid.
    """

    documents: tuple[Mapping[str, Any], ...]
    policy_programs: tuple[Mapping[str, Any], ...] = ()
    trusted_dirs: frozenset[str] = frozenset(DEFAULT_TRUSTED_DIRS)
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    _raw: dict[str, dict[str, tuple[str, Mapping[str, Any]]]] = field(
        default_factory=dict, repr=False
    )
    _compiled: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _groups: dict[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    _variables: _VariableIndex | None = field(default=None, repr=False)
    _methods: dict[str, Effect] | None = field(default=None, repr=False)
    _properties: dict[str, VariableRule] | None = field(default=None, repr=False)
    _variable_memo: dict[str, VariableRule | None] = field(
        default_factory=dict, repr=False
    )
    # The dispatcher's memo: (program name, shell) -> the entries that judge it.
    lookups: dict[tuple[str, str], tuple[ProgramEntry, ...]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        """Index the policy's own programs (few); namespaces wait for use."""
        policy: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for raw in self.policy_programs:
            _index(policy, "policy", raw)
        self._raw["policy"] = policy

    def index_all(self) -> None:
        """Index every namespace now (the loader checks names this way)."""
        for namespace in {d["namespace"] for d in self.documents}:
            self._table(namespace)

    def _table(self, namespace: str) -> dict[str, tuple[str, Mapping[str, Any]]]:
        table = self._raw.get(namespace)
        if table is None:
            table = self._raw[namespace] = {}
            for document in self.documents:
                if document["namespace"] != namespace:
                    continue
                for key in ("program", "cmdlet", "type"):
                    for raw in document.get(key, ()):
                        _index(table, namespace, raw)
        return table

    def _full(self, kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """An entry with its default values filled in."""
        return {**self.defaults.get(kind, {}), **raw}

    # -- programs ----------------------------------------------------------
    def programs(self, namespace: str, name: str) -> tuple[ProgramEntry, ...]:
        """The entries that judge program ``name``: built-in, then policy's."""
        if namespace in _ANY_CASE:
            name = name.lower()
        key = (namespace, name)
        found: tuple[ProgramEntry, ...] | None = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self._compile_programs(namespace, name)
        return found

    def _compile_programs(self, namespace: str, name: str) -> tuple[ProgramEntry, ...]:
        out = []
        hit = self._table(namespace).get(name)
        if hit is not None:
            canonical, raw = hit
            spec = f"{namespace}:{canonical}"
            out.append(compile_program(raw, spec, canonical, None, self._full))
        if namespace == "posix":
            mine = self._raw["policy"].get(name)
            if mine is not None:
                canonical, raw = mine
                spec = f"policy:{canonical}"
                out.append(compile_program(raw, spec, canonical, None, self._full))
        return tuple(out)

    def names(self, namespace: str) -> dict[str, str]:
        """Every name and alias of a namespace, mapped to its entry's name."""
        return {key: hit[0] for key, hit in self._table(namespace).items()}

    # -- PowerShell ----------------------------------------------------------
    def cmdlet(self, name: str) -> Cmdlet | None:
        """The cmdlet a canonical lower-case name stands for, or ``None``."""
        key = ("pwsh", name)
        if key in self._compiled:
            return self._compiled[key]  # type: ignore[no-any-return]
        hit = self._table("pwsh").get(name)
        compiled = None
        if hit is not None and hit[0] == name:
            document = self._groups.get("pwsh") or self._pwsh_groups()
            compiled = compile_cmdlet(self._full("cmdlet", hit[1]), document)
        self._compiled[key] = compiled
        return compiled

    def _pwsh_groups(self) -> Mapping[str, Any]:
        groups: dict[str, Any] = {}
        for document in self.documents:
            if document["namespace"] == "pwsh":
                groups.update(document.get("parameter_groups", {}))
        self._groups["pwsh"] = groups
        return groups

    def cmdlet_name(self, name: str) -> str | None:
        """Resolve a lower-case cmdlet name or built-in alias; ``None`` if unknown."""
        hit = self._table("pwsh").get(name)
        return hit[0] if hit is not None else None

    # -- .NET ------------------------------------------------------------------
    def dotnet_type(self, name: str) -> DotnetType | None:
        """The .NET type a normalised name stands for, or ``None``."""
        key = ("dotnet", name)
        if key in self._compiled:
            return self._compiled[key]  # type: ignore[no-any-return]
        hit = self._table("dotnet").get(name)
        compiled = compile_type(self._full("type", hit[1])) if hit is not None else None
        self._compiled[key] = compiled
        return compiled

    def dotnet_canonical(self, name: str) -> str:
        """A type's canonical name (``management.automation.scriptblock`` ...)."""
        hit = self._table("dotnet").get(name)
        return hit[0] if hit is not None else name

    def method_effect(self, name: str) -> Effect | None:
        """The effect of ``$obj.Name()`` on an object of unknown type."""
        if self._methods is None:
            self._methods = {
                raw["name"]: Effect(raw["effect"])
                for document in self.documents
                for raw in document.get("method", ())
            }
        return self._methods.get(name)

    def property_effect(self, name: str) -> tuple[Effect, str] | None:
        """What setting property ``name`` (lower case) does, or ``None``."""
        if self._properties is None:
            self._properties = {
                raw["name"]: VariableRule(raw["effect"], raw.get("reason", ""))
                for document in self.documents
                for raw in document.get("property", ())
            }
        found = self._properties.get(name)
        return None if found is None else (Effect(found.kind), found.reason)

    # -- environment -----------------------------------------------------------
    def variable(self, name: str) -> VariableRule | None:
        """What setting ``name`` does: the most specific entry, or ``None``."""
        if name in self._variable_memo:
            return self._variable_memo[name]
        if self._variables is None:
            self._variables = _VariableIndex(
                _variable_matcher(self._full("variable", raw))
                for document in self.documents
                for raw in document.get("variable", ())
            )
        found = self._variables.lookup(name.upper())
        if len(self._variable_memo) < 4096:  # noqa: PLR2004 - a bound, not a size
            self._variable_memo[name] = found
        return found

    def trusted(self, directory: str) -> bool:
        """Tell whether programs in ``directory`` are judged by their name."""
        return directory in self.trusted_dirs


def _variable_matcher(raw: Mapping[str, Any]) -> tuple[str, str, VariableRule]:
    rule = VariableRule(raw["kind"], raw["reason"])
    for how in ("name", "prefix", "suffix"):
        if raw[how] is not None:
            return how, raw[how].upper(), rule
    msg = "variable entry without a matcher"
    raise RegistryError(msg)


class _VariableIndex:
    """The variable rules, indexed for lookup.

    A name wins, else the longest prefix or suffix (the earlier entry when a
    prefix and a suffix are as long).
    """

    __slots__ = ("_names", "_prefixes", "_suffixes")

    def __init__(self, matchers: Iterable[tuple[str, str, VariableRule]]) -> None:
        self._names: dict[str, VariableRule] = {}
        ranked: dict[str, list[tuple[int, int, str, VariableRule]]] = {
            "prefix": [],
            "suffix": [],
        }
        for order, (how, text, rule) in enumerate(matchers):
            if how == "name":
                self._names.setdefault(text, rule)
            else:
                ranked[how].append((-len(text), order, text, rule))
        self._prefixes = sorted(ranked["prefix"], key=lambda item: item[:2])
        self._suffixes = sorted(ranked["suffix"], key=lambda item: item[:2])

    def lookup(self, upper: str) -> VariableRule | None:
        """The rule for an upper-case variable name, or ``None``."""
        named = self._names.get(upper)
        if named is not None:
            return named
        prefix = next((i for i in self._prefixes if upper.startswith(i[2])), None)
        suffix = next((i for i in self._suffixes if upper.endswith(i[2])), None)
        if prefix is None or suffix is None:
            best = prefix or suffix
        else:
            best = min(prefix, suffix, key=lambda item: item[:2])
        return None if best is None else best[3]


def _index(
    table: dict[str, tuple[str, Mapping[str, Any]]],
    namespace: str,
    raw: Mapping[str, Any],
) -> None:
    """Index an entry by its name and aliases; a name defined twice is an error."""
    canonical = raw["name"]
    for name in (canonical, *raw.get("aliases", ())):
        key = (
            name.lower() if namespace in ("pwsh", "windows", "cmd", "dotnet") else name
        )
        if key in table:
            msg = f"{namespace} name {name!r} is defined twice"
            raise RegistryError(msg)
        table[key] = (canonical, raw)
