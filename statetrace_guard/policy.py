"""The policy: pydantic models over a TOML file, and its compiled form.

A policy names, for each effect, the level it needs when no rule speaks, and
carries rules that match a simple command by program name or script path and
arguments. ``load_policy`` validates a file (unknown keys are errors naming
the file and the field) and ``compile_policy`` turns it into plain frozen
values the decision layer matches quickly; the policy is compiled once per
process. Rule examples (``match`` / ``not_match``) are checked when a policy
is loaded, by ``check_examples`` in ``policy_examples.py``.

A policy may start from a built-in one: ``extends = "builtin:statetrace"`` or
``"builtin:generic"``. The two TOML documents are merged before validation,
the same way for every section (:func:`merge_documents`): tables merge key by
key with the extending file winning, arrays of tables (``[[rules]]`` and any
other) are appended after the base's, anything else is replaced. Decisions
are unchanged by the merge: every rule of both files applies and the
strictest wins.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from statetrace_guard.classify.trusted import DEFAULT_TRUSTED_DIRS
from statetrace_guard.errors import PolicyError
from statetrace_guard.guardrails.config import (
    AdrPolicy,
    CommitPolicy,
    Guardrails,
    compile_guardrails,
)
from statetrace_guard.levels import Effect, Level
from statetrace_guard.online.egress import NetRule, parse_example
from statetrace_guard.online.hosts import parse_pattern
from statetrace_guard.protect import (
    DEFAULT_PROTECT,
    ProtectPatterns,
    check_glob,
    compile_protect,
)

__all__ = [
    "BUILTIN_POLICIES",
    "BUILTIN_POLICY_NAME",
    "CONTAINED",
    "CompiledPolicy",
    "CompiledRule",
    "Isolation",
    "NetworkRule",
    "Policy",
    "Protect",
    "Rule",
    "Settings",
    "compile_policy",
    "load_policy",
    "load_policy_bytes",
    "merge_documents",
    "parse_required_level",
]

BUILTIN_POLICY_NAME = "<built-in>"
# What ``extends`` may name: a built-in policy shipped in the package.
BUILTIN_POLICIES = {
    "builtin:statetrace": "default_policy.toml",
    "builtin:generic": "generic_policy.toml",
}
_MAX_EXTENDS = 4  # a chain of bases longer than this is a loop
LevelName = Literal["L0", "L1", "L2", "L3", "never"]
# ``contained``: run at the session's level inside its kernel envelope, and
# only where the kernel enforces that envelope (else: never).
DynamicLevelName = Literal["L0", "L1", "L2", "L3", "never", "contained"]
CONTAINED = "contained"
ExampleShell = Literal["exec", "bash", "pwsh"]


def parse_required_level(name: str) -> Level | None:
    """Map a policy level name to a Level; ``never`` is None."""
    return None if name == "never" else Level.parse(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One rule: what it matches, the level it needs, and examples."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
    description: str = ""
    program: tuple[str, ...] = ()
    script: tuple[str, ...] = ()
    args_prefix: tuple[str, ...] = ()
    args_pattern: str | None = None
    level: LevelName
    effects: tuple[Effect, ...] = ()
    test: bool = False
    background: bool = False
    timeout: Annotated[float, Field(gt=0)] | None = None
    max_memory: Annotated[int, Field(gt=0)] | None = None
    max_processes: Annotated[int, Field(gt=0)] | None = None
    example_shell: ExampleShell = "exec"
    match: tuple[str, ...] = ()
    not_match: tuple[str, ...] = ()

    @field_validator("args_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                msg = f"not a valid regular expression: {exc}"
                raise ValueError(msg) from exc
        return value

    def model_post_init(self, _context: object) -> None:
        """Reject a rule that matches nothing: an empty matcher is an error."""
        if not self.program and not self.script:
            msg = f"rule {self.id!r} names neither a program nor a script"
            raise ValueError(msg)


_METHOD = r"^[A-Z]{1,20}$"


class NetworkRule(_Strict):
    """One ``[[network]]`` entry: a host an L3 program may reach, or never.

    ``host`` is ``github.com``, ``*.github.com`` (names below it only), ``*``,
    an IP address or a CIDR network. Empty ``ports`` / ``methods`` allow any;
    ``methods`` restrict plain-HTTP requests and ``guard fetch``, and a TLS
    tunnel is allowed only when they are empty or include ``CONNECT``.
    ``match`` / ``not_match`` examples (``https://host/path``,
    ``GET http://host/``, ``host:port``) are checked when the policy loads.
    """

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:*-]*$")] | None = None
    host: str
    description: str = ""
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = ()
    methods: tuple[Annotated[str, Field(pattern=_METHOD)], ...] = ()
    schemes: tuple[Literal["https", "http"], ...] = ("https",)
    level: Literal["L3", "never"] = "L3"
    match: tuple[str, ...] = ()
    not_match: tuple[str, ...] = ()

    @field_validator("host")
    @classmethod
    def _host_parses(cls, value: str) -> str:
        parse_pattern(value)  # raises ValueError with the reason
        return value

    @property
    def rule_id(self) -> str:
        """The id, or ``network:<host>`` when none is given."""
        return self.id or f"network:{parse_pattern(self.host).text}"

    def compiled(self) -> NetRule:
        """The entry ready for matching."""
        return NetRule(
            id=self.rule_id,
            pattern=parse_pattern(self.host),
            ports=frozenset(self.ports),
            methods=frozenset(self.methods),
            schemes=frozenset(self.schemes),
            never=self.level == "never",
            description=self.description,
        )

    def model_post_init(self, _context: object) -> None:
        """Check the examples: each ``match`` allowed, each ``not_match`` not."""
        rule = self.compiled()
        for kind, examples in (("match", self.match), ("not_match", self.not_match)):
            for example in examples:
                request = parse_example(example)
                matched = (
                    rule.pattern.matches(request.host)
                    if rule.never
                    else rule.admits(request)
                )
                if matched != (kind == "match"):
                    verb = "is not matched" if kind == "match" else "is matched"
                    msg = f"example {example!r} {verb} by {rule.id}"
                    raise ValueError(msg)


class EffectLevels(_Strict):
    """The level each effect needs when no rule names the command."""

    read: LevelName = "L0"
    write: LevelName = "L1"
    network: LevelName = "L3"
    install: LevelName = "L3"
    dynamic: DynamicLevelName = "never"


class Settings(_Strict):
    """Run-time settings a policy may fix for every command."""

    require_sandbox: bool = False
    durable: bool = False
    grace_seconds: Annotated[float, Field(ge=0)] = 5.0
    lock_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    max_commands: Annotated[int, Field(gt=0)] | None = None
    max_blocked: Annotated[int, Field(gt=0)] | None = None
    max_duration_minutes: Annotated[float, Field(gt=0)] | None = None
    max_retries_of_blocked: Annotated[int, Field(ge=0)] = 3
    max_test_failures: Annotated[int, Field(gt=0)] = 3
    override_parameters: tuple[str, ...] = ()
    override_variables: tuple[str, ...] = ()
    watched_files: tuple[str, ...] = ()


class Protect(_Strict):
    """``[protect]``: workspace-relative globs kept read-only below L2.

    ``paths`` replaces the default list (an ``extends`` overlay that sets it
    replaces its base's); the git minimum of :mod:`statetrace_guard.protect`
    is added whatever it says.
    """

    paths: tuple[str, ...] = DEFAULT_PROTECT

    @field_validator("paths")
    @classmethod
    def _globs(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for text in paths:
            check_glob(text)
        return paths


class Isolation(_Strict):
    """``[isolation]``: what programs may do beyond files and network.

    ``unix_sockets``: the lowest level whose programs may create Unix
    sockets (and so connect to any socket they can write: tmux, docker,
    ssh-agent); ``never`` (the default) leaves every level with connected
    pairs and inherited sockets only (issue 12 K1).
    """

    unix_sockets: LevelName = "never"


class Jobs(_Strict):
    """``[jobs]``: session jobs (``guard run --background``, issue 15.4).

    ``lowest_level``: the lowest level whose commands may start one
    (``never`` turns them off); ``max_running``: how many may run at once
    in one session (the job budget).
    """

    lowest_level: LevelName = "L1"
    max_running: int = Field(default=4, ge=1, le=64)


class Policy(_Strict):
    """A whole policy file."""

    schema_version: Literal[1] = 1
    name: str
    extends: str | None = None
    description: str = ""
    settings: Settings = Settings()
    effects: EffectLevels = EffectLevels()
    protect: Protect = Protect()
    rules: tuple[Rule, ...] = ()
    network: tuple[NetworkRule, ...] = ()
    isolation: Isolation = Isolation()
    commit: CommitPolicy = CommitPolicy()
    adr: AdrPolicy = AdrPolicy()
    jobs: Jobs = Jobs()

    @field_validator("network")
    @classmethod
    def _unique_network_ids(
        cls, entries: tuple[NetworkRule, ...]
    ) -> tuple[NetworkRule, ...]:
        seen: set[str] = set()
        for entry in entries:
            if entry.rule_id in seen:
                msg = f"duplicate [[network]] id {entry.rule_id!r} (give each an id)"
                raise ValueError(msg)
            seen.add(entry.rule_id)
        return entries

    # Program knowledge the policy adds (the registry's schema: see
    # classify/specs/*.toml): a project tool the guard does not know, or an
    # option of a known one. Beside a built-in entry both apply. Validated
    # with the registry's ProgramSpec when present (importing that schema
    # costs more than a whole helper-served command: only when needed).
    programs: tuple[dict[str, object], ...] = ()
    # Directories whose programs are judged by name when given by path.
    trusted_dirs: tuple[str, ...] = DEFAULT_TRUSTED_DIRS

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                msg = f"duplicate rule id {rule.id!r}"
                raise ValueError(msg)
            seen.add(rule.id)
        return rules


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready for matching: lower-cased names, compiled patterns."""

    id: str
    level: Level | None
    programs: frozenset[str]
    script_pattern: re.Pattern[str] | None
    args_prefix: tuple[str, ...]
    args_pattern: re.Pattern[str] | None
    effects: frozenset[Effect]
    test: bool
    background: bool
    timeout: float | None
    max_memory: int | None
    max_processes: int | None
    description: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A validated policy, compiled once per process."""

    name: str
    source: str
    sha256: str
    settings: Settings
    effect_levels: dict[Effect, Level | None]
    rules: tuple[CompiledRule, ...]
    by_program: dict[str, tuple[CompiledRule, ...]]
    script_rules: tuple[CompiledRule, ...]
    model: Policy
    protect: ProtectPatterns
    guardrails: Guardrails
    network: tuple[NetRule, ...] = ()
    # The classifier's view of the policy: [[programs]] as canonical JSON and
    # the trusted directories (hashable: one registry per policy content).
    programs: tuple[str, ...] = ()
    trusted_dirs: tuple[str, ...] = DEFAULT_TRUSTED_DIRS
    # dynamic = "contained": the dynamic effect needs no level of its own
    # where the kernel enforces the envelope; effect_levels says None (never)
    # for it, which is what applies where the kernel does not.
    dynamic_contained: bool = False


def load_policy(path: Path | None) -> CompiledPolicy:
    """Load, validate and compile a policy file, or the built-in one.

    Raises:
        PolicyError: the file cannot be read, is not TOML, or is invalid.
    """
    if path is None:
        raw = _builtin_bytes(BUILTIN_POLICIES["builtin:statetrace"])
        return load_policy_bytes(raw, BUILTIN_POLICY_NAME)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    return load_policy_bytes(raw, str(path))


@functools.lru_cache(maxsize=16)
def load_policy_bytes(raw: bytes, source: str) -> CompiledPolicy:
    """Validate and compile policy TOML given as bytes; ``source`` names it.

    Cached by content: the same bytes are parsed and validated once per
    process (the resident helper serves many commands). A changed file has
    new bytes, so nothing stale is ever served. The digest covers the bases
    a policy extends too: a new built-in policy is a new effective policy.
    """
    document, parts, counts = _merged_document(raw, source, ())
    try:
        model = Policy.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        file, loc = _error_place(source, document, counts, tuple(first["loc"]))
        field = ".".join(str(part) for part in loc)
        raise PolicyError(first["msg"], file=file, field=field) from exc
    digest = hashlib.sha256(raw).hexdigest() if len(parts) == 1 else _chain(parts)
    compiled = compile_policy(model, source, digest)
    if model.programs:
        compiled = _with_programs(compiled, counts)
    return compiled


def _with_programs(policy: CompiledPolicy, counts: dict[str, int]) -> CompiledPolicy:
    """Validate ``[[programs]]`` with the registry's schema and handlers.

    Raises:
        PolicyError: an entry breaks the schema, names an unknown handler,
            or a name twice; the error names the file and the field.
    """
    from statetrace_guard.classify.knowledge import RegistryError  # noqa: PLC0415
    from statetrace_guard.classify.registry import validate_programs  # noqa: PLC0415
    from statetrace_guard.classify.specs_schema import ProgramSpec  # noqa: PLC0415

    dumps = []
    for index, raw in enumerate(policy.model.programs):
        try:
            spec = ProgramSpec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ("programs", index, *first["loc"])
            where, loc = _error_place(policy.source, {}, counts, loc)
            field = ".".join(str(part) for part in loc)
            raise PolicyError(first["msg"], file=where, field=field) from exc
        dumps.append(spec.model_dump(mode="json"))
    try:
        validate_programs(dumps, policy.source)
    except RegistryError as exc:
        raise PolicyError(str(exc), file=policy.source, field="programs") from exc
    programs = tuple(json.dumps(d, sort_keys=True) for d in dumps)
    return replace(policy, programs=programs)


def _chain(parts: list[bytes]) -> str:
    """One digest over a policy and its bases (length-prefixed, in order)."""
    digest = hashlib.sha256(b"statetrace-guard policy chain\n")
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _error_place(
    source: str,
    document: dict[str, object],
    counts: dict[str, int],
    loc: tuple[int | str, ...],
) -> tuple[str, tuple[int | str, ...]]:
    """Name the file and field of an error in a merged document.

    ``rules.3`` of a merged policy is the base's fourth rule, or the
    extending file's rule ``3 - len(base rules)``.
    """
    if len(loc) < 2 or not isinstance(loc[1], int):  # noqa: PLR2004 - (key, index)
        return source, loc
    count = counts.get(str(loc[0]), 0)
    if loc[1] < count:
        return str(document.get("extends")), loc
    return source, (loc[0], loc[1] - count, *loc[2:])


def _parse(raw: bytes, source: str) -> dict[str, object]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise PolicyError(
            "starts with a UTF-8 byte-order mark (BOM), which TOML does not allow",
            file=source,
            hint="save the file as UTF-8 without a BOM",
        )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"not valid TOML: {exc}", file=source) from exc


def _merged_document(
    raw: bytes, source: str, chain: tuple[str, ...]
) -> tuple[dict[str, object], list[bytes], dict[str, int]]:
    """Parse ``raw``; when it extends a base, merge it over the base.

    Returns the merged document, the raw bytes of every file involved (the
    extending file first) and how many entries each array of tables took
    from the bases (to name the right file in an error).
    """
    document = _parse(raw, source)
    base_name = document.get("extends")
    if base_name is None:
        return document, [raw], {}
    if not isinstance(base_name, str) or base_name not in BUILTIN_POLICIES:
        known = ", ".join(sorted(BUILTIN_POLICIES))
        msg = f"extends names no built-in policy (known: {known})"
        raise PolicyError(msg, file=source, field="extends")
    if base_name in chain or len(chain) >= _MAX_EXTENDS:
        msg = f"extends loops back to {base_name}"
        raise PolicyError(msg, file=source, field="extends")
    base_raw = _builtin_bytes(BUILTIN_POLICIES[base_name])
    base, parts, _ = _merged_document(base_raw, base_name, (*chain, base_name))
    base.pop("extends", None)
    counts = {key: len(value) for key, value in base.items() if _table_array(value)}
    return merge_documents(base, document), [raw, *parts], counts


@functools.cache
def _builtin_bytes(filename: str) -> bytes:
    # Guard's own files: a helper whose code changed on disk stops serving
    # (its code fingerprint), so a cached copy is never stale.
    return resources.files("statetrace_guard").joinpath(filename).read_bytes()


def merge_documents(
    base: dict[str, object], overlay: dict[str, object]
) -> dict[str, object]:
    """Merge two policy documents: the rule ``extends`` follows.

    Tables merge key by key (the overlay wins per key, recursively); arrays
    of tables are appended, the base's first; every other value (a string,
    a number, an array of strings) is replaced by the overlay's. The result
    shares no mutable structure with ``overlay``'s tables being merged.

    Args:
        base: the document being extended.
        overlay: the extending document.

    Returns:
        A new merged document.
    """
    merged = dict(base)
    for key, value in overlay.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = merge_documents(old, value)
        elif _table_array(old) and isinstance(value, list) and _table_array(value):
            merged[key] = [*old, *value]
        else:
            merged[key] = value
    return merged


def _table_array(value: object) -> TypeGuard[list[object]]:
    """An array of tables (``[[rules]]``); an empty array joins either kind."""
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def compile_policy(model: Policy, source: str, sha256: str) -> CompiledPolicy:
    """Turn a validated model into the matching tables."""
    rules = tuple(_compile_rule(rule) for rule in model.rules)
    by_program: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        for name in rule.programs:
            by_program.setdefault(name, []).append(rule)
    contained = model.effects.dynamic == CONTAINED
    levels = {
        effect: None
        if effect is Effect.DYNAMIC and contained
        else parse_required_level(getattr(model.effects, effect.value))
        for effect in Effect
    }
    return CompiledPolicy(
        name=model.name,
        source=source,
        sha256=sha256,
        settings=model.settings,
        effect_levels=levels,
        rules=rules,
        by_program={name: tuple(found) for name, found in by_program.items()},
        script_rules=tuple(rule for rule in rules if rule.script_pattern),
        model=model,
        network=tuple(entry.compiled() for entry in model.network),
        protect=compile_protect(model.protect.paths),
        trusted_dirs=model.trusted_dirs,
        guardrails=compile_guardrails(model.commit, model.adr),
        dynamic_contained=contained,
    )


def _compile_rule(rule: Rule) -> CompiledRule:
    script_pattern = None
    if rule.script:
        alternatives = "|".join(fnmatch.translate(glob.lower()) for glob in rule.script)
        script_pattern = re.compile(f"(?:{alternatives})")
    args_pattern = (
        re.compile(rule.args_pattern, re.IGNORECASE) if rule.args_pattern else None
    )
    return CompiledRule(
        id=rule.id,
        level=parse_required_level(rule.level),
        programs=frozenset(name.lower() for name in rule.program),
        script_pattern=script_pattern,
        args_prefix=tuple(arg.lower() for arg in rule.args_prefix),
        args_pattern=args_pattern,
        effects=frozenset(rule.effects),
        test=rule.test,
        background=rule.background,
        timeout=rule.timeout,
        max_memory=rule.max_memory,
        max_processes=rule.max_processes,
        description=rule.description,
    )
