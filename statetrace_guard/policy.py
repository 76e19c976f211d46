"""The policy: pydantic models over a TOML file, and its compiled form.

A policy names, for each effect, the level it needs when no rule speaks, and
carries rules that match a simple command by program name or script path and
arguments. ``load_policy`` validates a file (unknown keys are errors naming
the file and the field) and ``compile_policy`` turns it into plain frozen
values the decision layer matches quickly; the policy is compiled once per
process. Rule examples (``match`` / ``not_match``) are checked when a policy
is loaded, by ``check_examples`` in ``decision.py``.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from statetrace_guard.errors import PolicyError
from statetrace_guard.levels import Effect, Level

__all__ = [
    "BUILTIN_POLICY_NAME",
    "CompiledPolicy",
    "CompiledRule",
    "Policy",
    "Rule",
    "Settings",
    "compile_policy",
    "load_policy",
    "load_policy_bytes",
    "parse_required_level",
]

BUILTIN_POLICY_NAME = "<built-in>"
LevelName = Literal["L0", "L1", "L2", "L3", "never"]
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


class EffectLevels(_Strict):
    """The level each effect needs when no rule names the command."""

    read: LevelName = "L0"
    write: LevelName = "L1"
    network: LevelName = "L3"
    install: LevelName = "L3"
    dynamic: LevelName = "never"


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


class Policy(_Strict):
    """A whole policy file."""

    schema_version: Literal[1] = 1
    name: str
    description: str = ""
    settings: Settings = Settings()
    effects: EffectLevels = EffectLevels()
    rules: tuple[Rule, ...] = ()

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


def load_policy(path: Path | None) -> CompiledPolicy:
    """Load, validate and compile a policy file, or the built-in one.

    Raises:
        PolicyError: the file cannot be read, is not TOML, or is invalid.
    """
    if path is None:
        data = resources.files("statetrace_guard").joinpath("default_policy.toml")
        return load_policy_bytes(data.read_bytes(), BUILTIN_POLICY_NAME)
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
    new bytes, so nothing stale is ever served.
    """
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"not valid TOML: {exc}", file=source) from exc
    try:
        model = Policy.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise PolicyError(first["msg"], file=source, field=field) from exc
    return compile_policy(model, source, hashlib.sha256(raw).hexdigest())


def compile_policy(model: Policy, source: str, sha256: str) -> CompiledPolicy:
    """Turn a validated model into the matching tables."""
    rules = tuple(_compile_rule(rule) for rule in model.rules)
    by_program: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        for name in rule.programs:
            by_program.setdefault(name, []).append(rule)
    levels = {
        effect: parse_required_level(getattr(model.effects, effect.value))
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
