"""L3 online: host rules, the egress proxy, and ``guard fetch``.

* :mod:`.hosts`: host names and patterns, normalised once, matched one way;
  which addresses are refused unless a rule names them.
* :mod:`.egress`: the effective allow-list (policy ``[[network]]`` entries
  narrowed by the approval in force) and its verdict on one connection.
* :mod:`.proxy`: the filtering HTTP proxy the program reaches from inside
  its network namespace.
* :mod:`.plumbing`: starting and stopping the proxy beside a program.
* :mod:`.fetch`: ``guard fetch``, the guard's own download.
"""

from __future__ import annotations

__all__: list[str] = []
