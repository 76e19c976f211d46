"""Is this an operator action? Approvals must not come from the agent.

Two independent signs say a process runs inside a guarded command tree:

* ``STATETRACE_GUARD_ACTIVE`` in its environment (``guard run`` sets it in
  every program it starts and the decision layer never lets a command set or
  clear a ``STATETRACE_GUARD_*`` variable by itself);
* an ancestor process whose command line is a ``guard run`` (``guard run``,
  ``python -m statetrace_guard run``, any executable named ``guard``) or the
  resident helper's launcher (whose supervisors run programs), found by
  walking the parent chain. This catches a child that scrubbed its
  environment (``env -i``).

A process whose session ancestry cannot be established is refused too
(issue 12 K11): an orphan (parent PID 1) has lost the ancestors that would
give it away, and an ancestor that cannot be read hides one that may be a
guard. Inside a guarded program's PID namespace the walk ends at its init,
a copy of the guard's supervisor, which the command-line check recognises.

Neither is the last line of defence: the approval store lives in guard's
home, which the kernel sandbox never lets a guarded program write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from statetrace_guard.errors import SessionError

__all__ = [
    "ACTIVE_VARIABLE",
    "UnknownAncestry",
    "ancestor_cmdlines",
    "guard_run_cmdline",
    "operator_refusal",
    "require_operator",
]

ACTIVE_VARIABLE = "STATETRACE_GUARD_ACTIVE"
_GUARD_NAMES = frozenset({"guard", "guard.exe", "guard-script.py"})
_MODULE_NAMES = frozenset({"statetrace_guard", "statetrace_guard.__main__"})
_LAUNCHER_MODULE = "statetrace_guard.daemon.launcher"
_MAX_DEPTH = 64


def _is_guard_word(word: str) -> bool:
    base = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base in _GUARD_NAMES or word in _MODULE_NAMES:
        return True
    return word.replace("\\", "/").endswith("statetrace_guard/__main__.py")


def _is_python(word: str) -> bool:
    base = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base.startswith("python") or base in {"py", "py.exe"}


def _subcommand_is_run(words: Sequence[str]) -> bool:
    """The first word that is not an option is ``run``."""
    return next((w for w in words if not w.startswith("-")), None) == "run"


def guard_run_cmdline(cmdline: Sequence[str]) -> bool:
    """True when a command line *is* a ``guard run`` (any spelling of guard).

    Only the program itself counts: ``guard run``, ``guard.exe run``, an
    interpreter running the console script or ``-m statetrace_guard run``.
    A wrapper that starts guard as its child (``timeout 60 guard run ...``,
    ``strace ... guard run``) is not one. The helper's launcher counts: its
    supervisors are the parents of the programs it runs for ``guard run``.
    """
    if not cmdline:
        return False
    words = list(cmdline)
    if _is_python(words[0]):
        words = _after_interpreter_options(words[1:])
        if words[:2] == ["-m", _LAUNCHER_MODULE]:
            return True
        if words[:1] == ["-m"]:
            words = words[1:]
    return bool(words) and _is_guard_word(words[0]) and _subcommand_is_run(words[1:])


def _after_interpreter_options(words: list[str]) -> list[str]:
    """Drop the interpreter's own options (``-I``, ``-X opt``, ``-W arg``)."""
    index = 0
    while index < len(words) and words[index].startswith("-") and words[index] != "-m":
        if words[index] == "-c":
            return []  # a program given as text: not guard
        if words[index] in {"-X", "-W", "--check-hash-based-pycs"}:
            index += 1  # the option's argument
        index += 1
    return words[index:]


class UnknownAncestry(Exception):
    """The ancestry of this process cannot be established."""


def ancestor_cmdlines() -> Iterable[list[str]]:
    """Yield the command line of each ancestor process, nearest first.

    psutil is imported only here (operator commands are rare and not on the
    hot path).

    Raises:
        UnknownAncestry: the parent is PID 1 (an orphan), or an ancestor
            cannot be read (gone, hidden, or the walk is too deep).
    """
    import psutil  # noqa: PLC0415 - lazy: only operator commands walk the tree

    if os.getppid() == 1:
        raise UnknownAncestry("its parent is PID 1 (an orphaned process)")
    try:
        parents = psutil.Process(os.getpid()).parents()
    except psutil.Error as exc:
        raise UnknownAncestry("its parent processes cannot be read") from exc
    if len(parents) > _MAX_DEPTH:
        raise UnknownAncestry(f"more than {_MAX_DEPTH} ancestors")
    for parent in parents:
        try:
            yield parent.cmdline()
        except psutil.Error as exc:
            raise UnknownAncestry(f"ancestor {parent.pid} cannot be read") from exc


def operator_refusal(
    env: Mapping[str, str], ancestors: Iterable[Sequence[str]] | None = None
) -> str | None:
    """Say why this process is not the operator, or None when it may act.

    Args:
        env: the process environment.
        ancestors: the ancestors' command lines (default: walk the real tree).
    """
    if ACTIVE_VARIABLE in env:
        return f"{ACTIVE_VARIABLE} is set: this runs inside a guarded command"
    try:
        for cmdline in ancestor_cmdlines() if ancestors is None else ancestors:
            if guard_run_cmdline(cmdline):
                shown = " ".join(cmdline)[:80]
                return f"an ancestor process is a guarded run ({shown})"
    except UnknownAncestry as exc:
        return f"its session ancestry cannot be established: {exc}"
    return None


def require_operator(
    action: str,
    env: Mapping[str, str],
    ancestors: Iterable[Sequence[str]] | None = None,
) -> None:
    """Raise unless the caller may take an operator action.

    Raises:
        SessionError: the call comes from inside a guarded command tree.
    """
    why = operator_refusal(env, ancestors)
    if why is not None:
        raise SessionError(
            f"{action} is an operator action and is refused here: {why}",
            hint="the operator runs it in their own terminal, outside `guard run`",
        )
