"""Hooks for agent runtimes (Claude Code, Codex): ``guard hook RUNTIME``.

Both runtimes call a hook command with one JSON object on stdin and read its
answer from stdout (``hookSpecificOutput``) and its exit status (2 blocks).
The modules:

* ``protocol``: parse the input, build the answers (pure);
* ``wrap``: rewrite a shell command to run through ``guard run`` (pure);
* ``targets``: the files a file tool (Write, Edit, apply_patch...) writes (pure);
* ``mapping``: the runtime's session id -> the guard session (files);
* ``handler``: what each event does;
* ``main``: read stdin, answer, and fail closed on any error.

Nothing is imported here: ``guard hook`` runs before every tool call and
imports only what its event needs.
"""

from __future__ import annotations

__all__: list[str] = []
