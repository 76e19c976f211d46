"""A test run's real outcome: the test program's own status, not the pipeline's.

``guard run -- bash -c 'pytest -q | tail -1'`` exits with ``tail``'s status:
0, whether the tests passed or not. The guard records the command's exit
status only (it never reads the program's output), so this module works out
from the command's shape whether that status is the test program's own:

* a test program run directly, last in its pipeline, or anywhere in a
  pipeline after ``set -o pipefail`` (then a failing test fails the pipeline);
* followed only by ``&&`` (a failure stops the list with the test's status)
  or by statements after ``set -e``;
* ``Invoke-Pester`` sets an exit status only with ``-CI`` or ``-EnableExit``.

When the status is the test's own, 0 is PASS and anything else FAIL. When it
is not, a non-zero status is still FAIL (the run failed), but 0 proves
nothing from the shape alone.

Then the kernel's word decides: for a test command the runner watches the
tree's process events and records each outermost test program's own exit
status in ``command.finished``'s ``test_programs`` (see
:mod:`statetrace_guard.sandbox.procevents`). A test program that failed
makes the run FAIL whatever the pipeline said; a masked 0 is PASS only when
every test run in it was seen ending with 0 and nothing that could have been
one went unseen. Otherwise (no root, not Linux, events lost, an old record)
the result is UNKNOWN, with the command that masked it and why the test's
own status is missing named. Never PASS from a masked pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statetrace_guard.policy import CompiledPolicy, CompiledRule
from statetrace_guard.testpicker import TestPicker

if TYPE_CHECKING:
    from tree_sitter import Node

_Masked = Callable[["Node"], str]

__all__ = ["FAIL", "PASS", "UNKNOWN", "Outcome", "TestPrograms", "outcome_of"]

PASS = "PASS"  # noqa: S105 - a test result, not a password
FAIL = "FAIL"
UNKNOWN = "UNKNOWN"
_POSIX_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh"})
_PWSH = frozenset({"pwsh", "powershell", "pwsh.exe", "powershell.exe"})
# Programs that run another and exit with its status.
_PASS_THROUGH = frozenset({"timeout", "env", "nice", "nohup", "time", "stdbuf"})
_PESTER_EXIT = re.compile(r"-(ci|enableexit)\b|run\.exit", re.IGNORECASE)
_REPEATING = frozenset(
    {"for_statement", "c_style_for_statement", "while_statement", "function_definition"}
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A test run's result and, when it is not plain, why.

    Attributes:
        result: PASS, FAIL or UNKNOWN.
        why: for UNKNOWN, what hid the test's status; for FAIL without an
            exit status, what happened; None otherwise.
    """

    __test__ = False  # not a pytest class, despite the name

    result: str
    why: str | None = None


@dataclass(frozen=True, slots=True)
class TestPrograms:
    """The programs a policy's ``test = true`` rules name, to find in a script."""

    __test__ = False

    rules: tuple[CompiledRule, ...]
    picker: TestPicker

    @classmethod
    def of(cls, policy: CompiledPolicy) -> TestPrograms:
        """Collect the test rules of a policy."""
        rules = tuple(rule for rule in policy.rules if rule.test)
        return cls(rules, TestPicker.of(policy))

    def find(self, words: Sequence[str]) -> str | None:
        """Return the test run a simple command is (its short name), else None.

        Programs that pass a status through (``timeout 60 pytest``) are seen
        through, and so are interpreters running a test (``pwsh -Command
        Invoke-Pester``, ``python /venv/bin/pytest``): the same matching the
        runner uses on the programs it sees start
        (:class:`~statetrace_guard.testpicker.TestPicker`).
        """
        if not words:
            return None
        name = _base(words[0])
        if name in _PASS_THROUGH:
            found = (self.find(words[i:]) for i in range(1, len(words)))
            return next((item for item in found if item), None)
        return self.picker.pick(words)


def _base(word: str) -> str:
    return word.replace("\\", "/").rsplit("/", 1)[-1].lower()


@dataclass(frozen=True, slots=True)
class _Mask:
    """What hides the test's status, and how many test runs the script has.

    ``expected`` is None when that cannot be counted (a test in a loop or a
    function); ``own_counts`` is False when even the test program's own
    status says nothing (``Invoke-Pester`` without ``-CI`` exits 0).
    """

    why: str
    expected: int | None = None
    own_counts: bool = True


def outcome_of(
    argv: Sequence[str],
    exit_code: int | None,
    programs: TestPrograms,
    *,
    timed_out: bool = False,
    observed: Mapping[str, Any] | None = None,
) -> Outcome:
    """Return a recorded test run's real outcome (see the module docstring).

    ``observed`` is the record's ``test_programs`` (None when absent).
    """
    if timed_out:
        return Outcome(FAIL, "timed out")
    if exit_code is None:
        return Outcome(FAIL, "no exit status (killed or lost)")
    runs = _runs(observed)
    failed = next((run for run in runs if run[1] != 0), None)
    if failed is not None:
        return Outcome(FAIL, f"{failed[0]}'s own status: {failed[1]}")
    if exit_code != 0:
        return Outcome(FAIL)
    mask = _masker(argv, programs)
    return Outcome(PASS) if mask is None else _masked(mask, runs, observed)


def _masked(
    mask: _Mask, runs: list[tuple[str, str | int]], observed: Mapping[str, Any] | None
) -> Outcome:
    """A 0 the shape cannot vouch for: PASS on the kernel's word, else UNKNOWN."""
    missing = _unseen(mask, runs, observed)
    if missing is not None:
        return Outcome(UNKNOWN, f"{mask.why}; {missing}")
    names = ", ".join(dict.fromkeys(name for name, _ in runs))
    return Outcome(PASS, f"{names}'s own status 0, seen by the kernel")


def _runs(observed: Mapping[str, Any] | None) -> list[tuple[str, str | int]]:
    """(program, 0 or what ended it) for each test program seen ending."""
    found: list[tuple[str, str | int]] = []
    if observed is None or not isinstance(observed.get("runs"), list):
        return found
    for run in observed["runs"]:
        if not isinstance(run, dict):
            continue
        name = str(run.get("program"))
        if isinstance(run.get("signal"), int):
            found.append((name, f"killed by signal {run['signal']}"))
        elif isinstance(run.get("exit_code"), int):
            code = run["exit_code"]
            found.append((name, 0 if code == 0 else f"exit {code}"))
    return found


def _unseen(
    mask: _Mask, runs: list[tuple[str, str | int]], observed: Mapping[str, Any] | None
) -> str | None:
    """Why the test programs' own statuses do not vouch for a masked 0, or None."""
    if observed is None:
        return "its own status was not recorded"
    if observed.get("unobserved"):
        return f"its own status was not seen: {observed['unobserved']}"
    if not mask.own_counts:
        return "its own status says nothing either"
    if not runs:
        return "no test program was seen ending"
    unread = observed.get("unread")
    counted = mask.expected is not None and len(runs) >= mask.expected
    if isinstance(unread, int) and unread > 0 and not counted:
        return (
            f"{unread} program(s) ended before the guard could tell"
            " whether they were test runs"
        )
    return None


def _masker(argv: Sequence[str], programs: TestPrograms) -> _Mask | None:
    """Say what keeps the command's status from being the test's, else None."""
    if len(argv) >= 3 and _base(argv[0]) in _POSIX_SHELLS and "-c" in argv[1:-1]:  # noqa: PLR2004 - shell -c SCRIPT
        script = argv[argv.index("-c", 1) + 1]
        return _script_masker(script, programs)
    if argv and _base(argv[0]) in _PWSH:
        why = _pester_masker(" ".join(argv))
        return None if why is None else _Mask(why, own_counts=False)
    return None


def _pester_masker(text: str) -> str | None:
    if "invoke-pester" in text.lower() and not _PESTER_EXIT.search(text):
        return "Invoke-Pester without -CI sets no exit status for failed tests"
    return None


def _script_masker(script: str, programs: TestPrograms) -> _Mask | None:
    """Find the test in a POSIX shell script and what may hide its status."""
    from statetrace_guard.classify.bash import parser  # noqa: PLC0415 - tree-sitter only here

    root = parser().parse(script.encode()).root_node
    commands = _commands(root)
    found = [(node, programs.find(_words(node))) for node in commands]
    tests = [(node, name) for node, name in found if name]
    if not tests:
        return None
    test, name = tests[0]

    def masked(node: Node) -> str:
        return f"exit 0 may come from `{_one_line(_text(node))}`, not from {name}"

    why = _climb(test, _shell_flags(commands, test.start_byte), masked)
    if why is None:
        return None
    repeated = any(_repeated(node) for node, _ in tests)
    own_counts = not any("pester" in _base(name) for _, name in tests) or bool(
        _PESTER_EXIT.search(script)
    )
    return _Mask(why, None if repeated else len(tests), own_counts)


def _repeated(node: Node) -> bool:
    """Whether a command may run more than once (in a loop or a function)."""
    parent = node.parent
    while parent is not None:
        if parent.type in _REPEATING:
            return True
        parent = parent.parent
    return False


def _one_line(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _commands(node: Node) -> list[Node]:
    """Every simple command under ``node``, in source order."""
    found: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "command":
            found.append(current)
        stack.extend(reversed(current.children))
    return sorted(found, key=lambda item: item.start_byte)


def _words(node: Node) -> list[str]:
    """A command's words: its name and arguments, without assignments or redirects."""
    words = [
        _text(child)
        for child in node.children
        if child.type != "variable_assignment" and not child.type.endswith("redirect")
    ]
    return [word.strip("'\"") for word in words if word]


def _text(node: Node) -> str:
    return (node.text or b"").decode(errors="replace")


def _shell_flags(commands: Sequence[Node], before: int) -> frozenset[str]:
    """The ``set`` options turned on before byte ``before``: pipefail, errexit."""
    flags: set[str] = set()
    for node in commands:
        words = _words(node)
        if node.start_byte >= before or not words or words[0] != "set":
            continue
        for index, word in enumerate(words[1:], start=1):
            if not word.startswith("-") or word.startswith("--"):
                continue
            if "e" in word[1:]:
                flags.add("errexit")
            if "o" in word[1:] and index + 1 < len(words):
                flags.add(words[index + 1])
    return frozenset(flags)


def _climb(node: Node, flags: frozenset[str], masked: _Masked) -> str | None:
    """Walk up from the test: say which construct masks its status, or None."""
    child, parent = node, node.parent
    while parent is not None:
        rule = _RULES.get(parent.type, _inside)
        reason = rule(child, parent, flags, masked)
        if reason is not None:
            return reason
        child, parent = parent, parent.parent
    return None


def _transparent(_c: Node, _p: Node, _f: frozenset[str], _m: _Masked) -> str | None:
    return None


def _pipeline(
    child: Node, parent: Node, flags: frozenset[str], masked: _Masked
) -> str | None:
    """Not last in a pipeline: masked, unless pipefail."""
    last = [c for c in parent.children if c.is_named][-1]
    if last == child or "pipefail" in flags:
        return None
    return masked(last) + " (set -o pipefail makes a failing test fail it)"


def _sequence(
    child: Node, parent: Node, flags: frozenset[str], masked: _Masked
) -> str | None:
    """Statements after the test decide the status, unless errexit."""
    later = [
        c for c in parent.children if c.is_named and c.start_byte > child.start_byte
    ]
    if not later or "errexit" in flags:
        return None
    return masked(later[-1])


def _list(child: Node, parent: Node, _f: frozenset[str], masked: _Masked) -> str | None:
    """``a && b``: a's failure is the list's; ``a || b``: b decides."""
    operator = next((c.type for c in parent.children if c.type in {"&&", "||"}), "&&")
    if operator == "||" and parent.children[0] == child:
        return masked(parent.children[-1])
    return None


def _negated(_c: Node, _p: Node, _f: frozenset[str], _m: _Masked) -> str | None:
    return "! inverts the status"


def _inside(_c: Node, parent: Node, _f: frozenset[str], _m: _Masked) -> str | None:
    return f"the test runs inside {parent.type.replace('_', ' ')}"


_RULES: dict[str, Callable[[Node, Node, frozenset[str], _Masked], str | None]] = {
    "redirected_statement": _transparent,
    "pipeline": _pipeline,
    "list": _list,
    "program": _sequence,
    "subshell": _sequence,
    "compound_statement": _sequence,
    "negated_command": _negated,
}
