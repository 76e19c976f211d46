"""One error hierarchy and the exit codes it maps to.

The tree::

    GuardError                      exit 125 (run) / 1..4 (other commands)
    +-- UsageError                  2   bad input on the command line
    +-- PolicyError                 3   policy file invalid (carries file + field)
    +-- AuditError                  4   a log cannot be read, written or locked
    |   +-- ChainBroken             1   a log's hash chain or schema is broken
    +-- SandboxUnavailable          125 enforcement required but not available
    +-- SessionError                1   a session precondition does not hold
    +-- CommandDenied               126 the policy blocks the command

Only ``cli.py`` catches these. It prints ``error: <message>`` and the hint on
stderr and exits with the error's code. ``guard run`` reports its own failures
only as 123..127 so they cannot be mistaken for the child's status (the
timeout(1)/env(1) convention), except a usage error of its own command line
(exit 2, before anything is judged or run); a child's status passes through
unchanged and a child killed by signal N gives 128+N.

Two codes say what a status alone cannot:

* 123 (``RUN_OUTCOME_UNKNOWN``): the program was started, but the guard lost
  the part that watched it (its supervisor was killed, or the client died
  while running it) before learning how it ended. The ``command.finished``
  record says so (``outcome_unknown``). The program may have done its work:
  look before running it again. 125 always means that nothing ran.
* 5 (``INCOMPLETE``): ``guard verify`` found every chain intact, but a
  command has a ``command.started`` and no ``command.finished`` (the guard,
  or the machine, stopped while it ran).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

__all__ = [
    "AuditError",
    "ChainBroken",
    "CommandDenied",
    "ExitCode",
    "GuardError",
    "PolicyError",
    "RunFinished",
    "SandboxUnavailable",
    "SessionError",
    "UsageError",
    "run_exit_code",
]


class ExitCode(IntEnum):
    """Every exit code the guard itself produces (see README, "Exit codes")."""

    OK = 0
    NEGATIVE = 1  # check blocked, verify broken, replay drift, session refused
    USAGE = 2
    POLICY_INVALID = 3
    AUDIT_UNREADABLE = 4
    INCOMPLETE = 5  # verify: chains intact, a command started without a finish
    RUN_OUTCOME_UNKNOWN = 123  # run: started, then its watcher was lost
    RUN_TIMEOUT = 124
    RUN_GUARD_FAILED = 125
    RUN_BLOCKED = 126
    RUN_NOT_FOUND = 127
    SIGNAL_BASE = 128


class GuardError(Exception):
    """Base of every error the guard reports to its user."""

    exit_code: ClassVar[int] = ExitCode.RUN_GUARD_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        """Keep the one-line message and an optional hint for the user."""
        super().__init__(message)
        self.message = message
        self._hint = hint

    def hint(self) -> str | None:
        """Return a sentence telling the user what to do next, if there is one."""
        return self._hint


class UsageError(GuardError):
    """The command line or an input file is malformed."""

    exit_code: ClassVar[int] = ExitCode.USAGE


class PolicyError(GuardError):
    """A policy file is invalid; names the file and the field at fault."""

    exit_code: ClassVar[int] = ExitCode.POLICY_INVALID

    def __init__(
        self, message: str, *, file: str, field: str = "", hint: str | None = None
    ) -> None:
        """Prefix the message with where the problem is."""
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(where + message, hint=hint)
        self.file = file
        self.field = field


class AuditError(GuardError):
    """A log cannot be read, written or locked."""

    exit_code: ClassVar[int] = ExitCode.AUDIT_UNREADABLE


class ChainBroken(AuditError):
    """A log's hash chain, sequence or schema does not hold."""

    exit_code: ClassVar[int] = ExitCode.NEGATIVE


class SandboxUnavailable(GuardError):
    """Kernel enforcement was required but this machine cannot provide it."""

    exit_code: ClassVar[int] = ExitCode.RUN_GUARD_FAILED


class SessionError(GuardError):
    """A session precondition, budget or state does not allow the request."""

    exit_code: ClassVar[int] = ExitCode.NEGATIVE


class CommandDenied(GuardError):
    """The policy blocks the command; nothing was run."""

    exit_code: ClassVar[int] = ExitCode.RUN_BLOCKED


class RunFinished(SystemExit):
    """``guard run`` is done: exit with ``code``, the program's status or 124..127.

    A SystemExit of its own kind, so the console script knows the program has
    ended and its records are written: it exits without the interpreter's
    teardown (see entry.py).
    """


def run_exit_code(code: int) -> int:
    """Map a guard error's code to one ``guard run`` may use (2, 123..127).

    A usage error stays 2 (the command line was wrong; nothing was judged).
    Any other failure of the guard itself (bad policy, unwritable log)
    becomes 125, so it can never be taken for the program's own status.
    """
    if code == ExitCode.USAGE:
        return code
    if ExitCode.RUN_OUTCOME_UNKNOWN <= code <= ExitCode.RUN_NOT_FOUND:
        return code
    return int(ExitCode.RUN_GUARD_FAILED)
