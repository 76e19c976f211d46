"""Decide: the strictest requirement of every simple command wins.

For each simple command the required level comes from the strictest policy
rule that matches it, else from the policy's level for each of its effects.
Three invariants hold whatever the rules say:

* network and install effects found by the classifier need L3 and the
  operator's opt-in variable set to exactly ``1``;
* a write to the guard's own files (its log subdirectories, its home, the
  policy file) or outside the workspace and temporary directories is never
  allowed, and a write to a protected path (the policy's ``[protect]`` list
  and git's minimum, :mod:`statetrace_guard.protect`) needs L2;
* setting ``STATETRACE_GUARD_*`` is never allowed, and setting an opt-in
  variable is allowed only at L3 when the operator already set it to ``1``
  (it then grants nothing new; the plan lists that form at L3).

A network command's hosts (those the classifier sees in its URLs) are
judged against the policy's ``[[network]]`` entries by the same code the
L3 egress proxy uses (:meth:`Egress.host_verdict`): a host the proxy would
refuse blocks the command even where its level and opt-in suffice, so the
agent hears it before anything runs. Hosts it cannot see are the proxy's.

Contained execution: under ``dynamic = "contained"`` a command whose only
obstacle is that the classifier cannot know what it does needs no level of
its own: it runs at the session's level inside that level's kernel envelope,
and its verdict says ``contained``. That holds only where the caller says
the kernel enforces (``DecisionContext.enforcement == "kernel"``); anywhere
else the dynamic effect is never allowed. Everything the classifier does know
(network, installs, writes and their targets, a privilege change, protected
paths named as what the command works on) still decides first.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Literal

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.classify.paths import is_within
from statetrace_guard.levels import (
    OPT_IN_INSTALL,
    OPT_IN_NET,
    Effect,
    Level,
    format_level,
)
from statetrace_guard.online.egress import Egress
from statetrace_guard.online.hosts import url_host_port
from statetrace_guard.operands import named_protected, resolve_target
from statetrace_guard.policy import CompiledPolicy, CompiledRule
from statetrace_guard.protect import contains_protected, protection

__all__ = [
    "CommandVerdict",
    "Decision",
    "DecisionContext",
    "Enforcement",
    "HostVerdict",
    "Verdict",
    "combine_verdicts",
    "decide",
    "describe_command",
    "matching_rules",
    "max_required",
]

_OPT_IN_FOR_EFFECT = {Effect.NETWORK: OPT_IN_NET, Effect.INSTALL: OPT_IN_INSTALL}
_OPT_IN_VARIABLES = frozenset(_OPT_IN_FOR_EFFECT.values())
_GUARD_VARIABLE_PREFIX = "STATETRACE_GUARD_"
_SINK_PATHS = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/fd/")

Enforcement = Literal["kernel", "none"]
# Dynamic commands the envelope is not asked to contain: a parse the
# classifier refused (it may hide what it would know) and programs whose
# purpose is to change privilege (the envelope exists to deny exactly that).
_PRIVILEGE_PROGRAMS = (
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
)
_UNCONTAINED_SPECS = frozenset(
    {"unparsed", *(f"posix:{name}" for name in _PRIVILEGE_PROGRAMS)}
)


class Decision(IntEnum):
    """Ordered so that the strictest wins with ``max``."""

    ALLOW = 0
    DENY = 2

    @property
    def label(self) -> str:
        """The word records and JSON use: ``allow`` or ``block``."""
        return "allow" if self is Decision.ALLOW else "block"


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """The facts about the machine that a decision needs, resolved once."""

    workspace: str
    cwd: str
    protected: tuple[str, ...]
    temp_dirs: tuple[str, ...] = ("/tmp", "/var/tmp")  # noqa: S108 - writable rooms, not files we create
    env: Mapping[str, str] = field(default_factory=dict)
    # Whether the kernel enforces the level's envelope where the command
    # would run; "none" (the safe default) never lets dynamic code run
    # contained. The caller decides (sandbox.containment_available()).
    enforcement: Enforcement = "none"
    # Set by decide to the network program when the command line has one.
    fetched: str | None = None


@dataclass(frozen=True, slots=True)
class HostVerdict:
    """A host a network command names, and the ``[[network]]`` answer on it."""

    host: str
    allowed: bool
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class CommandVerdict:
    """What one simple command needs, and the rule that said so."""

    command: SimpleCommand
    effects: frozenset[Effect]
    required: Level | None
    rule: str
    reasons: tuple[str, ...]
    opt_ins: frozenset[str]
    matched: CompiledRule | None
    hosts: tuple[HostVerdict, ...] = ()
    contained: bool = False  # allowed only because the kernel contains it
    why: str = ""  # the deciding requirement's reason, without the command

    def allowed_at(self, level: Level, env: Mapping[str, str]) -> bool:
        """Return whether this command may run at ``level`` with ``env``."""
        if self.required is None or level < self.required:
            return False
        if not all(env.get(name) == "1" for name in self.opt_ins):
            return False
        return self.refused_host is None

    @property
    def refused_host(self) -> HostVerdict | None:
        """The first host the ``[[network]]`` entries refuse, if any."""
        return next((host for host in self.hosts if not host.allowed), None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on a whole command line."""

    decision: Decision
    level: Level
    required_level: Level | None
    effects: frozenset[Effect]
    commands: tuple[CommandVerdict, ...]
    reasons: tuple[str, ...]
    blocking: CommandVerdict | None
    opt_ins: frozenset[str]

    @property
    def allowed(self) -> bool:
        """True when the command may run."""
        return self.decision is Decision.ALLOW

    @property
    def rules(self) -> tuple[str, ...]:
        """The distinct rules that decided, in order of first use.

        A command blocked only by a refused host names that host's rule too.
        """
        found = [verdict.rule for verdict in self.commands]
        host = self.host_block
        if host is not None:
            found.append(host.rule)
        return tuple(dict.fromkeys(found))

    @property
    def host_block(self) -> HostVerdict | None:
        """The refused host that alone blocks the command (level and opt-in suffice)."""
        item = self.blocking
        if item is None or item.refused_host is None:
            return None
        required = item.required
        if required is None or self.level < required:
            return None
        return item.refused_host

    @property
    def contained(self) -> bool:
        """True when the command may run only inside the kernel envelope."""
        return self.allowed and any(item.contained for item in self.commands)


def max_required(levels: Sequence[Level | None]) -> Level | None:
    """Combine requirements: ``None`` (never) dominates every level."""
    if any(level is None for level in levels):
        return None
    return max((level for level in levels if level is not None), default=Level.L0)


def decide(
    classification: Classification,
    policy: CompiledPolicy,
    level: Level,
    ctx: DecisionContext,
) -> Verdict:
    """Judge every simple command and combine: the strictest wins."""
    # Code run next to a network command may be what it fetched (`curl | sh`,
    # `wget -O x.sh && bash x.sh`): the envelope is not asked to contain it.
    fetcher = next(
        (c.name for c in classification.commands if Effect.NETWORK in c.effects), None
    )
    # (Only the containment of that code is refused: a loopback request
    # itself stays fenced by the session's network namespace.)
    if ctx.enforcement == "kernel" and fetcher is not None:
        ctx = replace(ctx, fetched=fetcher or "it")
    verdicts = tuple(
        _judge(command, policy, ctx) for command in _proxied(classification.commands)
    )
    return combine_verdicts(verdicts, level, ctx.env, classification.parse_errors)


def _proxied(commands: Sequence[SimpleCommand]) -> Sequence[SimpleCommand]:
    """No loopback request where the command line sets a proxy variable.

    ``http_proxy=... curl http://localhost/`` (or ``env HTTPS_PROXY=...``)
    would carry the request away from loopback: the session's namespace has
    no route out, but the classifier does not call that loopback either.
    """
    if not any("proxy" in name.lower() for c in commands for name in c.env_sets):
        return commands
    return [replace(c, loopback=False) if c.loopback else c for c in commands]


def combine_verdicts(
    verdicts: tuple[CommandVerdict, ...],
    level: Level,
    env: Mapping[str, str],
    parse_errors: tuple[str, ...] = (),
) -> Verdict:
    """The whole command's verdict from its simple commands': the strictest wins.

    The guardrails call it again after tightening a simple command's verdict.
    """
    required = max_required([verdict.required for verdict in verdicts])
    blocking = next((v for v in verdicts if not v.allowed_at(level, env)), None)
    effects = frozenset().union(*(verdict.effects for verdict in verdicts))
    opt_ins = frozenset().union(*(verdict.opt_ins for verdict in verdicts))
    reasons = [reason for verdict in verdicts for reason in verdict.reasons]
    reasons.extend(f"parse: {error}" for error in parse_errors)
    return Verdict(
        decision=Decision.ALLOW if blocking is None else Decision.DENY,
        level=level,
        required_level=required,
        effects=effects,
        commands=verdicts,
        reasons=tuple(dict.fromkeys(reasons)),
        blocking=blocking,
        opt_ins=opt_ins,
    )


def describe_command(command: SimpleCommand, limit: int = 60) -> str:
    """Render a command for one-line messages, shortened to ``limit``."""
    text = " ".join(command.argv) or command.name
    return text if len(text) <= limit else text[: limit - 3] + "..."


# NOTE(speed): agents repeat commands, and batch replays repeat them more.
# What a command needs depends only on the command, the policy's content and
# where it runs, except through the file system: written paths resolve
# through symlinks that may change, and a folder an argument names may come
# to hold protected data. So what is kept is the requirement before the
# arguments' paths are looked at, and only for commands that write nothing.
_MEMO: dict[tuple[object, ...], _Needs] = {}
_MEMO_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class _Needs:
    """What a simple command needs before its arguments' paths are looked at."""

    rule: CompiledRule | None
    effects: frozenset[Effect]
    parts: tuple[_Part, ...]
    hosts: tuple[HostVerdict, ...]


def _judge(
    command: SimpleCommand, policy: CompiledPolicy, ctx: DecisionContext
) -> CommandVerdict:
    if command.written:
        needs = _needs(command, policy, ctx)
    else:
        key = (command, policy.sha256, policy.source, ctx.enforcement, ctx.fetched)
        found = _MEMO.get(key)
        if found is None:
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            found = _MEMO[key] = _needs(command, policy, ctx)
        needs = found
    parts = [*needs.parts, *_argument_parts(command, needs, policy, ctx)]
    verdict = _combine(command, needs.effects, parts, needs.rule)
    if command.loopback and ctx.enforcement != "kernel":
        why = f"{command.name}: {_LOOPBACK_UNENFORCED}"
        verdict = replace(verdict, reasons=(*verdict.reasons, why))
    if not needs.hosts:
        return verdict
    refused = [
        f"{command.name}: {host.reason}" for host in needs.hosts if not host.allowed
    ]
    return replace(verdict, hosts=needs.hosts, reasons=(*verdict.reasons, *refused))


def _needs(
    command: SimpleCommand, policy: CompiledPolicy, ctx: DecisionContext
) -> _Needs:
    own = _own_effects(command, ctx)
    rule = _strictest_rule(command, policy)
    if rule is not None:
        effects = rule.effects or own
        parts = [_Part(rule.level, rule.id, f"rule {rule.id}")]
    else:
        effects = own
        parts = [
            _effect_part(effect, command, policy, ctx) for effect in sorted(effects)
        ]
    if own != command.effects:
        parts.append(_LOOPBACK_PART)
    parts.extend(_floor_parts(own | effects))
    parts.extend(_write_parts(command, policy, ctx))
    parts.extend(_env_parts(command))
    hosts: tuple[HostVerdict, ...] = ()
    if Effect.NETWORK in effects and command.urls:
        hosts = _host_verdicts(command, policy)
    return _Needs(rule, frozenset(effects), tuple(parts), hosts)


def _host_verdicts(
    command: SimpleCommand, policy: CompiledPolicy
) -> tuple[HostVerdict, ...]:
    """Each host the command's URLs name, judged as the egress proxy would."""
    egress = Egress(policy.network)
    found: dict[str, HostVerdict] = {}
    for url in command.urls:
        # A bare word may be a host or a file name (curl -o x.bin): only
        # URLs with a scheme are judged here; the rest are the proxy's.
        host_port = url_host_port(url) if "://" in url else None
        if host_port is None or host_port[0] in found:
            continue
        host = host_port[0]
        answer = egress.host_verdict(host)
        found[host] = HostVerdict(host, answer.allowed, answer.rule, answer.reason)
    return tuple(found.values())


@dataclass(frozen=True, slots=True)
class _Part:
    """One requirement found on a command, with the rule that states it."""

    required: Level | None
    rule: str
    why: str
    opt_in: str | None = None
    contained: bool = False


# Loopback traffic (issue 15.5): below L3 a session's programs share one
# network namespace with loopback only, so a request to localhost reaches
# the session's own servers and nothing else. Without that namespace
# (--enforcement none, macOS, Windows) loopback is the machine's own
# services, and the request is network like any other.
_LOOPBACK_PART = _Part(
    Level.L1,
    "loopback",
    "reaches only loopback, inside the session's own network namespace",
)
_LOOPBACK_UNENFORCED = (
    "loopback traffic is allowed only where the kernel gives the session a "
    "network namespace of its own; here localhost is the machine's own services"
)


def _own_effects(command: SimpleCommand, ctx: DecisionContext) -> frozenset[Effect]:
    """The command's effects, less network when it is loopback the kernel fences."""
    if command.loopback and ctx.enforcement == "kernel":
        return (command.effects - {Effect.NETWORK}) or frozenset({Effect.READ})
    return command.effects


def _combine(
    command: SimpleCommand,
    effects: frozenset[Effect],
    parts: list[_Part],
    rule: CompiledRule | None,
) -> CommandVerdict:
    required = max_required([part.required for part in parts])
    deciding = _deciding_part(parts)
    opt_ins = frozenset(part.opt_in for part in parts if part.opt_in)
    effect_text = ", ".join(sorted(effect.value for effect in effects)) or "nothing"
    need = format_level(required)
    if opt_ins and required is not None:
        need += " with " + " and ".join(f"{name}=1" for name in sorted(opt_ins))
    reasons = [
        f"{command.name}: {effect_text} ({command.spec}) needs {need}: {deciding.why}"
    ]
    reasons.extend(f"{command.name}: {reason}" for reason in command.reasons)
    return CommandVerdict(
        command=command,
        effects=effects | _written_effect(command),
        required=required,
        rule=deciding.rule,
        reasons=tuple(reasons),
        opt_ins=opt_ins,
        matched=rule,
        contained=any(part.contained for part in parts),
        why=deciding.why,
    )


def _deciding_part(parts: list[_Part]) -> _Part:
    """The strictest part; on a tie the first, so a policy rule names itself."""

    def strictness(part: _Part) -> int:
        return 4 if part.required is None else int(part.required)

    default = _Part(Level.L0, "effect:read", "reads only")
    return max(parts, key=strictness, default=default)


def _written_effect(command: SimpleCommand) -> frozenset[Effect]:
    return frozenset({Effect.WRITE}) if command.written else frozenset()


def matching_rules(
    command: SimpleCommand, policy: CompiledPolicy
) -> list[CompiledRule]:
    """Every policy rule that matches a simple command, in policy order."""
    candidates = list(policy.by_program.get(command.name.lower(), ()))
    if command.script:
        script = command.script.lower()
        candidates.extend(
            rule
            for rule in policy.script_rules
            if rule.script_pattern and rule.script_pattern.fullmatch(script)
        )
    return [rule for rule in candidates if _args_match(rule, command.argv[1:])]


def _strictest_rule(
    command: SimpleCommand, policy: CompiledPolicy
) -> CompiledRule | None:
    matching = matching_rules(command, policy)
    if not matching:
        return None
    return max(matching, key=lambda rule: 4 if rule.level is None else int(rule.level))


def _args_match(rule: CompiledRule, args: tuple[str, ...]) -> bool:
    if rule.args_prefix:
        given = tuple(arg.lower() for arg in args[: len(rule.args_prefix)])
        if given != rule.args_prefix:
            return False
    return (
        rule.args_pattern is None
        or rule.args_pattern.search(" ".join(args)) is not None
    )


def _effect_part(
    effect: Effect, command: SimpleCommand, policy: CompiledPolicy, ctx: DecisionContext
) -> _Part:
    if effect is Effect.DYNAMIC and policy.dynamic_contained:
        return _contained_part(command, ctx)
    required = policy.effect_levels[effect]
    return _Part(
        required, f"effect:{effect.value}", f"the policy's level for {effect.value}"
    )


def _contained_part(command: SimpleCommand, ctx: DecisionContext) -> _Part:
    """Dynamic code under ``dynamic = "contained"``: the kernel decides, or never."""
    if command.spec == "unparsed":
        why = "the script could not be parsed, so nothing can vouch for what it runs"
        return _Part(None, "effect:dynamic", why)
    if command.spec in _UNCONTAINED_SPECS:
        why = f"{command.name} changes privilege, which no envelope contains"
        return _Part(None, "effect:dynamic", why)
    if ctx.fetched:
        why = f"runs code that may come from the network through {ctx.fetched}"
        return _Part(None, "effect:dynamic", why)
    if ctx.enforcement != "kernel":
        why = (
            "runs code the classifier cannot know, and this machine's kernel "
            "does not enforce the envelope that would contain it"
        )
        return _Part(None, "effect:dynamic", why)
    why = "runs code the classifier cannot know, contained in the level's envelope"
    return _Part(Level.L0, "contained", why, contained=True)


def _floor_parts(effects: frozenset[Effect]) -> list[_Part]:
    """Network and install need L3 and the opt-in, whatever a rule says."""
    return [
        _Part(
            Level.L3,
            f"effect:{effect.value}",
            f"{effect.value} needs the operator's opt-in",
            opt_in=name,
        )
        for effect, name in _OPT_IN_FOR_EFFECT.items()
        if effect in effects
    ]


def _write_parts(
    command: SimpleCommand, policy: CompiledPolicy, ctx: DecisionContext
) -> list[_Part]:
    parts = []
    for target in command.written:
        where, glob = _classify_target(target, ctx, policy)
        if where == "protected":
            parts.append(
                _Part(
                    None, "self-protect", f"writes {target}, which belongs to the guard"
                )
            )
        elif where == "outside":
            parts.append(
                _Part(
                    None,
                    "write-outside-workspace",
                    f"writes {target}, outside the workspace",
                )
            )
        elif where == "protected-data":
            why = f"writes {target}, protected below L2 ([protect] {glob})"
            parts.append(_Part(Level.L2, "protected-path", why))
        elif where == "inside":
            required = policy.effect_levels[Effect.WRITE]
            parts.append(_Part(required, "effect:write", f"writes {target}"))
    return parts


def _argument_parts(
    command: SimpleCommand, needs: _Needs, policy: CompiledPolicy, ctx: DecisionContext
) -> list[_Part]:
    """Protected data named as what a program that may write anything works on.

    Asked of programs that run code the classifier cannot know, and of those
    that write without naming what (a rule's script with no known output);
    never of programs known to only read, nor about the files the classifier
    names as written (:func:`_write_parts` judges those).
    """
    effects = needs.effects
    if Effect.DYNAMIC not in effects and (
        Effect.WRITE not in effects or command.writes
    ):
        return []
    cwd = ctx.cwd if command.cwd is None else command.cwd
    skip = [posixpath.join(ctx.cwd, target) for target in command.written]
    if command.script:
        skip.append(posixpath.join(ctx.workspace, command.script))
    found = named_protected(
        command.argv,
        pwsh=command.shell == "pwsh",
        cwd=cwd,
        workspace=ctx.workspace,
        patterns=policy.protect,
        skip=skip,
    )
    if found is None:
        return []
    why = f"{found.describe()}; L2 maintains data"
    return [_Part(Level.L2, "protected-argument", why)]


def _env_parts(command: SimpleCommand) -> list[_Part]:
    parts = []
    for name in command.env_sets:
        upper = name.upper()
        if upper.startswith(_GUARD_VARIABLE_PREFIX):
            parts.append(
                _Part(
                    None,
                    "protect-guard-variables",
                    f"sets {upper}, which configures the guard",
                )
            )
        elif upper in _OPT_IN_VARIABLES:
            why = f"sets {upper}, which only the operator grants (allowed when it is 1)"
            parts.append(_Part(Level.L3, "protect-opt-in", why, opt_in=upper))
    return parts


def _classify_target(
    target: str, ctx: DecisionContext, policy: CompiledPolicy
) -> tuple[str, str | None]:
    """Say where a written path lands, and the ``[protect]`` glob that holds it.

    ``sink``, ``inside``, ``outside``, ``protected`` (the guard's) or
    ``protected-data`` (read-only below L2: the path, or a protected path
    below it, as ``rm -rf Data`` removes ``Data/**/*.accdb``).
    """
    if target in {"$null", "&1", "&2", "-"} or target.startswith(_SINK_PATHS):
        return "sink", None
    resolved = resolve_target(target, ctx.cwd)
    if resolved is None:
        return "outside", None
    if _is_protected(resolved, ctx):
        return "protected", None
    if is_within(resolved, ctx.workspace):
        rel = resolved[len(ctx.workspace) + 1 :]
        glob = protection(rel, policy.protect) or contains_protected(
            rel, policy.protect
        )
        return ("protected-data", glob) if glob else ("inside", None)
    if any(is_within(resolved, tmp) for tmp in ctx.temp_dirs):
        return "inside", None
    return "outside", None


def _is_protected(resolved: str, ctx: DecisionContext) -> bool:
    """Inside a guard-owned path, or an ancestor of one below the workspace.

    Compared case-insensitively: on Windows and macOS ``LOGS/SESSIONS`` is
    the same directory, and on Linux refusing a look-alike costs nothing.
    """
    path = resolved.lower()
    workspace = ctx.workspace.lower()
    for owned in (item.lower() for item in ctx.protected):
        if is_within(path, owned):
            return True
        if is_within(owned, path) and not is_within(workspace, path):
            return True
    return False
