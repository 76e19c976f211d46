"""Guard's private state directory, computed without importing pathlib.

``guard run`` reaches this before anything heavy is loaded, so it uses only
``os``. :func:`statetrace_guard.paths.guard_home` wraps it as a Path.
"""

from __future__ import annotations

import os

__all__ = ["guard_home_text", "guard_homes_text"]

# Each setting resolved once per process: a command asks for guard's home a
# dozen times (logs, anchors, keys, pins), and the resident helper serves
# many commands for the one home it was started with. One answer per
# setting also keeps every part of a command on the same home.
_RESOLVED: dict[str, str] = {}


def guard_home_text() -> str:
    """Return guard's home: ``$STATETRACE_GUARD_HOME``, else the platform default."""
    explicit = os.environ.get("STATETRACE_GUARD_HOME")
    if explicit:
        return _resolved(explicit)
    return _default_home()


def _resolved(path: str) -> str:
    found = _RESOLVED.get(path)
    if found is None:
        found = _RESOLVED[path] = os.path.realpath(path)
    return found


def guard_homes_text() -> tuple[str, ...]:
    """Guard's home and the platform default one, resolved (what programs never read).

    The default home may hold another configuration's keys and approvals
    even while ``$STATETRACE_GUARD_HOME`` points elsewhere.
    """
    return tuple(
        dict.fromkeys(_resolved(p) for p in (guard_home_text(), _default_home()))
    )


def _default_home() -> str:
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local"
        )
        return os.path.join(base, "statetrace-guard")
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "statetrace-guard")
