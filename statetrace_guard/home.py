"""Guard's private state directory, computed without importing pathlib.

``guard run`` reaches this before anything heavy is loaded, so it uses only
``os``. :func:`statetrace_guard.paths.guard_home` wraps it as a Path.
"""

from __future__ import annotations

import os

__all__ = ["guard_home_text"]


def guard_home_text() -> str:
    """Return guard's home: ``$STATETRACE_GUARD_HOME``, else the platform default."""
    explicit = os.environ.get("STATETRACE_GUARD_HOME")
    if explicit:
        return os.path.realpath(explicit)
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local"
        )
        return os.path.join(base, "statetrace-guard")
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "statetrace-guard")
