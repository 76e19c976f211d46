"""The resident helper that keeps ``guard run`` fast.

Python starts in about 12 ms here; importing what judging, recording and
enforcing need (click, pydantic, structlog, tree-sitter, the classifier's
tables, the runner and the sandbox) costs several times that. The helper is
a per-user daemon that holds all of it loaded:

* :mod:`.client`: ``guard run``'s side; imports almost nothing, sends the
  argv, working directory, environment and its inheritable descriptors
  over a Unix socket, relays signals, exits with the program's status;
* :mod:`.server`: judges, writes ``command.started`` and
  ``command.finished``; one selector loop, never forks per command;
* :mod:`.launcher`: a small process the server starts once; it forks a
  supervisor per command, which runs the program under the sandbox plan on
  the client's descriptors and reports the outcome;
* :mod:`.peer`: what the server checks about a client before running a
  program for it (same user, not a guarded program, same process context);
* :mod:`.protocol` and :mod:`.wire`: the messages.

Failure never opens anything: when the daemon cannot be reached, is stale,
or fails before the start is recorded, the client does the same work
in-process (slower, same records); when that fails too, ``guard run`` exits
125 and nothing runs.
"""

from __future__ import annotations

__all__: list[str] = []
