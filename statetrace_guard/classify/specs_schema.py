"""The schema of the program-knowledge registry (``classify/specs/*.toml``).

Validated with pydantic, as every TOML the guard reads: unknown keys are
errors that name the file and the field. A policy's ``[[programs]]`` entries
use :class:`ProgramSpec`, the same schema as the built-in posix entries.
This module is imported only when TOML is validated (a registry cache miss,
or a policy load); classification reads the compiled form in
:mod:`statetrace_guard.classify.registry`.

The key names and what they mean are documented on the models; the rule for
an option an entry does not list is on ``unknown_options``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from statetrace_guard.levels import Effect

__all__ = [
    "OPERAND_KINDS",
    "OPTION_KINDS",
    "CmdletSpec",
    "DotnetMethodSpec",
    "DotnetPropertySpec",
    "DotnetTypeSpec",
    "Example",
    "Mode",
    "ProgramSpec",
    "SpecFile",
    "SubcommandSpec",
    "VariableSpec",
]

# What an option's value is, or what a flag does. The lists on an entry are
# named ``<kind>_options`` (``flags`` for options without a value).
OPTION_KINDS = (
    "flags",  # no value; changes nothing the guard tracks
    "value_options",  # an opaque value (a pattern, a number, a name)
    "optional_value_options",  # a value only when glued (-iSUF, --opt=V)
    "read_options",  # a file the program reads
    "write_options",  # a file (or directory) the program writes
    "exec_options",  # a program the program runs, with arguments of its own
    "shell_options",  # a hook: a shell command line run at some point
    "command_options",  # the command line the program exists to run (flock -c)
    "network_options",  # a remote address the program connects to
    "code_options",  # code or a config that can run anything: dynamic
    "dynamic_flags",  # no value; the program then does what cannot be known
)
# What a positional operand is. A pattern item is a kind with an optional
# quantifier: "read*", "write+", "value?", "write" (exactly one).
OPERAND_KINDS = (
    "read",  # a file read
    "write",  # a file or directory written (created, changed, removed)
    "value",  # opaque text
    "url",  # a remote address: network
    "command",  # the rest is a command (argv) the program runs
    "shell",  # a shell command line the program runs with sh -c
    "script",  # a script file the program runs (a policy rule may name it)
    "dynamic",  # its presence makes the command do what cannot be known
)
_OPERAND = re.compile(r"^(" + "|".join(OPERAND_KINDS) + r")([*+?]?)$")
_NAME = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\s/\\]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Strict):
    """A command line and the effects the entry gives it."""

    command: str
    effects: tuple[Effect, ...]
    shell: Literal["bash", "pwsh", "exec"] | None = None  # default: by namespace


class Mode(_Strict):
    """A variant of the program chosen by an option (``tar -t``, ``gzip -c``).

    The first mode whose options are present replaces the entry's effects
    (and, when given, its operand pattern and default write).
    """

    options: tuple[str, ...]
    effects: tuple[Effect, ...]
    reason: str = ""
    operands: tuple[str, ...] | None = None
    default_write: str | None = None

    @field_validator("operands")
    @classmethod
    def _pattern(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _check_operands(value)


def _check_operands(pattern: tuple[str, ...]) -> tuple[str, ...]:
    for item in pattern:
        if not _OPERAND.match(item):
            kinds = ", ".join(OPERAND_KINDS)
            msg = f"operand {item!r} is not a kind ({kinds}) with * + or ?"
            raise ValueError(msg)
    return pattern


class _Behaviour(_Strict):
    """What a program (or one of its subcommands) does with its arguments."""

    reason: str = ""
    effects: tuple[Effect, ...] = (Effect.READ,)
    handler: str | None = None
    # gnu: getopt_long (bundles, glued values, --long=V, unambiguous prefixes,
    # options anywhere unless options_stop_at_operand); long: -name is one
    # long option (Go, find); windows: /opt or -opt, any case, /opt:value;
    # none: no argument is an option.
    option_style: Literal["gnu", "long", "windows", "none"] = "gnu"
    options_stop_at_operand: bool = False
    # NOTE(registry): the rule for an option the entry does not list. The
    # default is dynamic: an unlisted option may write or run something.
    # An entry may say "read" only when every option of its program that
    # writes, runs or connects is listed (so an unlisted one only reads).
    unknown_options: Literal["dynamic", "read"] = "dynamic"
    flags: tuple[str, ...] = ()
    value_options: tuple[str, ...] = ()
    optional_value_options: tuple[str, ...] = ()
    read_options: tuple[str, ...] = ()
    write_options: tuple[str, ...] = ()
    exec_options: tuple[str, ...] = ()
    shell_options: tuple[str, ...] = ()
    command_options: tuple[str, ...] = ()
    network_options: tuple[str, ...] = ()
    code_options: tuple[str, ...] = ()
    dynamic_flags: tuple[str, ...] = ()
    # Alone, these print a version or help text: the command only reads.
    version_options: tuple[str, ...] = ("--version", "--help")
    operands: tuple[str, ...] = ("read*",)
    default_write: str | None = None
    modes: tuple[Mode, ...] = ()
    subcommands: dict[str, SubcommandSpec] = Field(default_factory=dict)
    # dynamic: a word that is no subcommand may be a plugin or alias; operand:
    # it is an ordinary operand and the entry judges the command itself.
    unknown_subcommand: Literal["dynamic", "operand"] = "dynamic"
    hint: str | None = None
    # Lists a code handler reads (named by the handler, e.g. git's
    # dangerous_config); any other key is an error.
    handler_data: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # ``match`` examples are classified with exactly their effects by this
    # entry; ``not_match`` examples get some effect beyond the entry's own
    # (an option that writes or runs): the direction a bypass would take.
    match: tuple[Example, ...] = ()
    not_match: tuple[Example, ...] = ()

    @field_validator("operands")
    @classmethod
    def _pattern(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_operands(value)

    @model_validator(mode="after")
    def _options_once(self) -> _Behaviour:
        seen: dict[str, str] = {}
        for kind in OPTION_KINDS:
            for option in getattr(self, kind):
                if option in seen:
                    msg = f"option {option!r} is in both {seen[option]} and {kind}"
                    raise ValueError(msg)
                seen[option] = kind
        for mode in self.modes:
            unlisted = [o for o in mode.options if o not in seen]
            if unlisted:
                msg = f"mode option {unlisted[0]!r} is in no option list"
                raise ValueError(msg)
        return self


class SubcommandSpec(_Behaviour):
    """A subcommand (``git log``, ``pip install``): its own behaviour."""

    aliases: tuple[str, ...] = ()


class ProgramSpec(_Behaviour):
    """One program: its names and behaviour, with examples checked in tests."""

    name: _NAME
    aliases: tuple[_NAME, ...] = ()


class CmdletSpec(_Strict):
    """One PowerShell cmdlet: how its parameters bind and what it does."""

    name: _NAME
    aliases: tuple[_NAME, ...] = ()
    reason: str = ""
    effects: tuple[Effect, ...] = (Effect.READ,)
    parameters: tuple[str, ...] = ()  # take a value
    parameter_groups: tuple[str, ...] = ()  # named lists from the file
    switches: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()  # bound in this order
    write_parameters: tuple[str, ...] = ()
    url_parameters: tuple[str, ...] = ()
    # Script blocks kept to run later (a handler, a hook): dynamic when given.
    code_parameters: tuple[str, ...] = ()
    # Switches that make the call reach the network or do what cannot be known.
    network_switches: tuple[str, ...] = ()
    dynamic_switches: tuple[str, ...] = ()
    parameter_aliases: dict[str, str] = Field(default_factory=dict)
    handler: str | None = None
    default_write: str | None = None
    splat_safe: bool = False
    handler_data: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    match: tuple[Example, ...] = ()
    not_match: tuple[Example, ...] = ()


class DotnetTypeSpec(_Strict):
    """A .NET type as scripts reach it: ``[T]::M()``, ``New-Object T``."""

    name: _NAME  # lower case, without "System."
    aliases: tuple[_NAME, ...] = ()
    static: Effect = Effect.DYNAMIC  # a static member not listed below
    constructor: Effect = Effect.DYNAMIC  # New-Object T, [T]::new()
    read_members: tuple[str, ...] = ()
    write_members: tuple[str, ...] = ()
    network_members: tuple[str, ...] = ()
    dynamic_members: tuple[str, ...] = ()
    match: tuple[Example, ...] = ()
    not_match: tuple[Example, ...] = ()


class DotnetMethodSpec(_Strict):
    """A method called on an object whose type is not known (``$x.M()``)."""

    name: _NAME
    effect: Effect


class DotnetPropertySpec(_Strict):
    """A property whose *setting* changes the world (``$f.IsReadOnly = $true``).

    Matched by name on any object or type: file and process objects have
    these; the object written to is known only at run time.
    """

    name: _NAME
    effect: Effect
    reason: str = ""


class VariableSpec(_Strict):
    """An environment variable (or a family of them) and what setting it does.

    ``hijack``: the variable changes which program or code later commands
    run, or where they look for it (PATH, LD_PRELOAD, GIT_SSH_COMMAND);
    setting it is ``dynamic``. ``plain``: setting it changes nothing the guard
    tracks (an exception inside a hijacking family). ``write-dir``: programs
    write into the directory it names (TMPDIR): setting it writes there.
    The most specific entry wins: a name, then the longest prefix or suffix.
    """

    name: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    kind: Literal["hijack", "plain", "write-dir"]
    reason: str = ""

    @model_validator(mode="after")
    def _one_matcher(self) -> VariableSpec:
        given = [m for m in (self.name, self.prefix, self.suffix) if m is not None]
        if len(given) != 1:
            msg = "a variable entry has exactly one of name, prefix, suffix"
            raise ValueError(msg)
        return self


class SpecFile(_Strict):
    """One ``specs/*.toml`` file."""

    namespace: Literal[
        "posix", "python", "pwsh", "windows", "cmd", "dotnet", "environment"
    ]
    description: str = ""
    parameter_groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    program: tuple[ProgramSpec, ...] = ()
    cmdlet: tuple[CmdletSpec, ...] = ()
    type: tuple[DotnetTypeSpec, ...] = ()
    method: tuple[DotnetMethodSpec, ...] = ()
    property: tuple[DotnetPropertySpec, ...] = ()
    variable: tuple[VariableSpec, ...] = ()


_Behaviour.model_rebuild()
SubcommandSpec.model_rebuild()
ProgramSpec.model_rebuild()
