"""Sessions: the autonomy plan's preconditions, approvals, budgets and reports.

Modules: :mod:`.store` (a session's state read back from its log),
:mod:`.approvals` (the operator's chained approval store in guard's home),
:mod:`.gate` (what ``guard run`` asks before and after a command),
:mod:`.loops` (denial-loop detection), :mod:`.overrides` (L2 override
parameters, variables and watched files), :mod:`.operator` (is this an
operator action?) and :mod:`.report` (the ``session end`` report).

Nothing is imported here, so ``guard run`` loads only what it uses.
"""

from __future__ import annotations

__all__: list[str] = []
