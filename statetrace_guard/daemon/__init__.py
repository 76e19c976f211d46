"""The resident helper that keeps ``guard run`` fast.

Python starts in about 12 ms here; importing what judging and recording need
(click, pydantic, structlog, tree-sitter, the classifier's tables) costs
several times that. The helper is a per-user daemon that holds all of it
loaded. ``guard run`` (:mod:`.client`) imports almost nothing: it sends the
argv, working directory and environment over a Unix socket; the daemon
(:mod:`.server`) judges, writes ``command.started`` and answers with the
sandbox plan; the client forks, enforces and runs the program itself (so the
terminal, process group and stdio stay the agent's), then reports the outcome
for ``command.finished``.

Failure never opens anything: when the daemon cannot be reached, is stale,
or dies mid-command, the client does the same work in-process (slower, same
records); when that fails too, ``guard run`` exits 125 and nothing runs.
"""

from __future__ import annotations

__all__: list[str] = []
