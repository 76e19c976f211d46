"""Guardrails: the autonomy plan's rules that are not about levels.

* the commit guard: no commit may add ``.accdb`` stores, raw logs, the
  guard's own logs or secrets (``[commit]`` in the policy), checked when a
  commit-making command is judged and again by git hooks
  (``guard install git-hooks``) for commits no classifier sees;
* the ADR stop: compiled components and schema changes wait for an ADR that
  names the session's task (``[adr]``).

Modules: ``config`` (policy sections, pydantic) and ``rules``/``globs`` (their
compiled form, plain values); ``commits`` and ``adr`` (pure recognition);
``gitcmd``/``contents``/``scan``/``inspect`` (facts from the repository) and
``facts`` (their data); ``findings`` and ``judge`` (pure judgement); ``review``
(the step in a judgement); ``hook`` (the git hooks' entry point) and
``githooks`` (installing them); ``session`` (commits made in a session).

NOTE(guardrails): this package imports nothing on its own: ``policy`` imports
``guardrails.config`` and ``guardrails.review`` imports ``policy``.
"""

from __future__ import annotations

__all__: list[str] = []
