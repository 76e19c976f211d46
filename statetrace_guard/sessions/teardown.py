"""What ``session end`` takes down besides its record: the session's network.

The session's network namespace (below L3, as root; see
:mod:`statetrace_guard.sandbox.session_network`) is unmounted and its file
removed once the session has ended; its jobs are ended first.
"""

from __future__ import annotations

import sys
from pathlib import Path

from statetrace_guard.home import guard_home_text

__all__ = ["release_session_network"]


def release_session_network(log_dir: Path, session_id: str) -> str | None:
    """Remove the session's network namespace file; a warning when it stays."""
    if sys.platform != "linux":
        return None
    from statetrace_guard.sandbox.session_network import (  # noqa: PLC0415 - Linux only
        remove_session_network,
        session_network_path,
    )

    path = session_network_path(guard_home_text(), str(log_dir), session_id)
    try:
        remove_session_network(path)
    except OSError as exc:
        return f"guard: warning: the session's network namespace stays: {exc}"
    return None
