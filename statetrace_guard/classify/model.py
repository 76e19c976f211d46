"""What classification produces: frozen values, no behaviour.

The classifier turns an argv (or a script inside ``bash -c`` / ``pwsh -Command``)
into a flat tuple of :class:`SimpleCommand`, one per simple command found
anywhere in the parse (pipelines, lists, substitutions, loops, script blocks,
nested shells, wrapped commands). The policy layer then decides on each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from statetrace_guard.levels import Effect

if TYPE_CHECKING:
    from statetrace_guard.classify.knowledge import Knowledge

__all__ = ["Classification", "ClassifyContext", "Shell", "SimpleCommand", "Word"]

Shell = Literal["exec", "bash", "pwsh", "cmd"]


@dataclass(frozen=True, slots=True)
class ClassifyContext:
    """Where the command runs; paths are absolute and normalised.

    ``cwd`` resolves relative paths in arguments and redirections;
    ``workspace`` is the root the agent may write under (L1 and up);
    ``knowledge`` is the registry the policy sees (``None``: the built-in
    one). Knowledge compares by identity: one object per policy content.
    """

    cwd: str
    workspace: str
    depth: int = 0  # nesting of shells inside shells; bounded by the classifier
    knowledge: Knowledge | None = None

    def deeper(self) -> ClassifyContext:
        """The context one nesting level down (a shell inside a shell)."""
        return ClassifyContext(self.cwd, self.workspace, self.depth + 1, self.knowledge)

    def at(self, cwd: str) -> ClassifyContext:
        """The same context in another directory (after ``cd``)."""
        return ClassifyContext(cwd, self.workspace, self.depth, self.knowledge)


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a simple command after quote removal.

    ``static`` is False when the word's value is not knowable before it runs:
    it holds a variable, a command substitution, an arithmetic expansion or an
    unquoted glob. ``text`` is then the source text.
    """

    text: str
    static: bool = True


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """One simple command and what it does.

    Attributes:
        argv: the words after quote removal and escape processing, as the
            shell would pass them; a word that cannot be resolved statically
            (a variable, a substitution, a glob) keeps its source text.
        shell: the language the command was found in.
        name: the canonical program name used for matching: the basename
            for a path (``/usr/bin/curl`` -> ``curl``), lower-cased and alias
            resolved for PowerShell (``iwr`` -> ``invoke-webrequest``).
        effects: the union of what it does; never empty (at least READ).
        spec: the id of the built-in knowledge that decided the effects,
            e.g. ``posix:curl``, ``pwsh:invoke-webrequest``, ``unknown``.
        reasons: human sentences explaining the effects.
        path: the program path as written when it was given by path.
        script: the normalised workspace-relative path when the program is
            a script file (``Tools/Invoke-AllChecks.ps1``), for policy rules.
        writes: file paths written by the command's own arguments
            (``cp a b`` -> ``b``; ``Out-File x``; ``sed -i f``), as written.
        redirects: files written by output redirection (never /dev/null or
            ``$null``), as written.
        urls: URLs and host names found in the arguments.
        hint: a lower-level way to do the same, when one exists.
        env_sets: names of environment variables the command sets for
            itself or its shell (``export X=1``, ``X=1 cmd``, ``env X=1 cmd``,
            ``$env:X = 1``, ``setx X``, ``[Environment]::SetEnvironmentVariable``),
            so the policy can protect the operator's opt-in variables.
        cwd: where the command runs when a ``cd``/``Set-Location`` earlier in
            the script moved there (absolute); ``""`` when that directory is
            known only at run time; ``None`` when it runs where the command
            line starts. Its arguments are relative to it (``writes`` and
            ``redirects`` are already resolved past the move).
        loopback: its only network use is requests to loopback URLs spelled
            unmistakably (:mod:`statetrace_guard.classify.loopback`), through
            a client that takes no option sending them elsewhere.
    """

    argv: tuple[str, ...]
    shell: Shell
    name: str
    effects: frozenset[Effect]
    spec: str
    reasons: tuple[str, ...] = ()
    path: str | None = None
    script: str | None = None
    writes: tuple[str, ...] = ()
    redirects: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    hint: str | None = None
    env_sets: tuple[str, ...] = ()
    cwd: str | None = None
    loopback: bool = False

    @property
    def written(self) -> tuple[str, ...]:
        """Every file the command writes: its own outputs, then redirections."""
        return (*self.writes, *self.redirects)


@dataclass(frozen=True, slots=True)
class Classification:
    """The simple commands of one top-level command, in source order."""

    commands: tuple[SimpleCommand, ...]
    parse_errors: tuple[str, ...] = field(default=())

    @property
    def effects(self) -> frozenset[Effect]:
        """The union of every simple command's effects."""
        out: set[Effect] = set()
        for command in self.commands:
            out |= command.effects
        return frozenset(out)
