"""Which running programs are test runs, from their command lines alone.

The runner watches a test command's tree for the test program's own exit
status (:mod:`statetrace_guard.sandbox.procevents`); it needs to tell, at
each exec, whether the new program is one of the policy's ``test = true``
rules. The policy itself is too heavy for the helper's launcher (it imports
only the runner and the sandbox), so :class:`TestPicker` carries the rules'
matching data as plain values, travels as JSON-ready data (the launch
message), and matches an argv the way the decision does: program name,
``args_prefix``, ``args_pattern``, ``script`` globs.

At exec the kernel shows the interpreter's command line, not the script's:
``/venv/bin/python /venv/bin/pytest -q``, ``node /usr/bin/npm test``,
``pwsh -File Tools/Checks.ps1``. When the argv itself matches nothing, the
interpreter and its options are stripped and the script looked at; a
``pwsh -Command TEXT`` is looked at by TEXT's first words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statetrace_guard.policy import CompiledPolicy, CompiledRule

__all__ = ["PickRule", "TestPicker"]

# Programs that run a script named by their first non-option argument.
_INTERPRETER = re.compile(
    r"(python[0-9.]*|pypy[0-9.]*|node|nodejs|ruby|perl|pwsh|powershell|bash|sh|dash)"
    r"(\.exe)?",
    re.IGNORECASE,
)
# Options after which no script follows (inline code, a module, a command).
_INLINE = frozenset({"-c", "-m", "-e", "--eval", "-command", "-encodedcommand"})
_PWSH = frozenset({"pwsh", "powershell", "pwsh.exe", "powershell.exe"})
_PWSH_COMMAND = frozenset({"-command", "-c"})
_PWSH_FILE = frozenset({"-file", "-f"})


def _base(word: str) -> str:
    return word.replace("\\", "/").rsplit("/", 1)[-1].lower()


@dataclass(frozen=True, slots=True)
class PickRule:
    """One ``test = true`` rule's matching data (lower-cased, patterns compiled)."""

    __test__ = False  # not a pytest class, despite the name

    id: str
    programs: frozenset[str]
    args_prefix: tuple[str, ...] = ()
    args_pattern: re.Pattern[str] | None = None
    script_pattern: re.Pattern[str] | None = None

    def label(self, words: Sequence[str]) -> str | None:
        """The run's short name (``pytest``, ``npm test``) if it matches, else None."""
        name = _base(words[0])
        script = words[0].replace("\\", "/").lower()
        if self.script_pattern is not None and self.script_pattern.search(script):
            return name
        if name not in self.programs and name.removesuffix(".exe") not in self.programs:
            return None
        args = words[1:]
        prefix = self.args_prefix
        if prefix and tuple(arg.lower() for arg in args[: len(prefix)]) != prefix:
            return None
        if self.args_pattern is not None:
            if self.args_pattern.search(" ".join(args)) is None:
                return None
            return " ".join([name, *args[: max(len(prefix), 1)]])
        return " ".join([name, *prefix])


@dataclass(frozen=True, slots=True)
class TestPicker:
    """The test rules of a policy, to pick test runs out of a process tree."""

    __test__ = False

    rules: tuple[PickRule, ...]

    @classmethod
    def of(cls, policy: CompiledPolicy) -> TestPicker:
        """The picker for a policy's ``test = true`` rules."""
        return cls(tuple(_from_rule(rule) for rule in policy.rules if rule.test))

    def pick(self, argv: Sequence[str]) -> str | None:
        """The test run a command line is (its short name), or None."""
        if not argv or not argv[0]:
            return None
        found = self._match(argv)
        if found is not None:
            return found
        script = _script_of(argv)
        return self._match(script) if script else None

    def _match(self, words: Sequence[str]) -> str | None:
        labels = (rule.label(words) for rule in self.rules)
        return next((label for label in labels if label is not None), None)

    def to_wire(self) -> list[dict[str, Any]]:
        """JSON-ready form (patterns as their source)."""
        return [
            {
                "id": rule.id,
                "programs": sorted(rule.programs),
                "args_prefix": list(rule.args_prefix),
                "args_pattern": _source(rule.args_pattern),
                "script_pattern": _source(rule.script_pattern),
            }
            for rule in self.rules
        ]

    @classmethod
    def from_wire(cls, data: Iterable[dict[str, Any]]) -> TestPicker:
        """Rebuild what :meth:`to_wire` gave."""
        return cls(
            tuple(
                PickRule(
                    id=str(item["id"]),
                    programs=frozenset(item["programs"]),
                    args_prefix=tuple(item["args_prefix"]),
                    args_pattern=_compiled(item["args_pattern"], re.IGNORECASE),
                    script_pattern=_compiled(item["script_pattern"]),
                )
                for item in data
            )
        )


def _from_rule(rule: CompiledRule) -> PickRule:
    return PickRule(
        id=rule.id,
        programs=rule.programs,
        args_prefix=rule.args_prefix,
        args_pattern=rule.args_pattern,
        script_pattern=rule.script_pattern,
    )


def _source(pattern: re.Pattern[str] | None) -> str | None:
    return None if pattern is None else pattern.pattern


def _compiled(source: str | None, flags: int = 0) -> re.Pattern[str] | None:
    return None if source is None else re.compile(source, flags)


def _script_of(argv: Sequence[str]) -> Sequence[str] | None:
    """The script an interpreter runs, with its arguments; None if not one."""
    name = _base(argv[0])
    if not _INTERPRETER.fullmatch(name):
        return None
    rest = list(argv[1:])
    while rest and rest[0].startswith("-"):
        option = rest[0].lower()
        if name in _PWSH and option in _PWSH_COMMAND:
            return " ".join(rest[1:]).split() or None
        if name in _PWSH and option in _PWSH_FILE:
            return rest[1:] or None
        if option in _INLINE:
            return None
        rest = rest[1:]
    return rest or None
