"""statetrace_guard: a guard between an autonomous coding agent and the shell.

The package root stays import-light on purpose: ``guard run`` imports only
what its path needs. The Python API (:mod:`statetrace_guard.api`) is
available here and loads on first use::

    import statetrace_guard

    statetrace_guard.check("rm -rf build", level="L1").allowed
"""

from __future__ import annotations

from statetrace_guard._version import __version__

# NOTE(speed): every `guard run` imports this package; typing alone costs
# more than the client's whole import budget, so it is not imported here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from statetrace_guard.api import (
        CheckResult,
        CommandResult,
        EditResult,
        RunResult,
        check,
        check_edit,
        record,
        run,
    )

__all__ = [
    "CheckResult",
    "CommandResult",
    "EditResult",
    "RunResult",
    "__version__",
    "check",
    "check_edit",
    "record",
    "run",
]

_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> object:
    """Import the API on first use of one of its names."""
    if name in _API:
        from statetrace_guard import api  # noqa: PLC0415

        return getattr(api, name)
    msg = f"module 'statetrace_guard' has no attribute {name!r}"
    raise AttributeError(msg)
