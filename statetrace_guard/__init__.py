"""statetrace_guard: a guard between an autonomous coding agent and the shell.

The package root stays import-light on purpose: ``guard run`` imports only
what its path needs. Import the pieces from their modules.
"""

from __future__ import annotations

from statetrace_guard._version import __version__

__all__ = ["__version__"]
