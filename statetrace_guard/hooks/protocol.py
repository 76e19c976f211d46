"""The hook protocol Claude Code and Codex share: one JSON object in, an answer out.

Input (stdin): ``session_id``, ``transcript_path``, ``cwd``,
``hook_event_name`` and, for tool events, ``tool_name``, ``tool_input`` and
``tool_use_id`` (PostToolUse adds ``tool_response``). Answers:

* exit 0 with ``{"hookSpecificOutput": {"hookEventName": "PreToolUse",
  "permissionDecision": "allow", "updatedInput": {...}}}``: run the tool with
  this input instead;
* exit 0 with ``"permissionDecision": "deny"`` and a
  ``permissionDecisionReason``: the tool does not run and the model reads the
  reason as the tool's result;
* exit 0 with no output: no objection, the runtime's own rules decide;
* exit 2 with one line on stderr: the runtime's "block" (PreToolUse: the tool
  does not run and the model reads the line).

Everything here is pure: parsing and answers as values, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

__all__ = [
    "BLOCK_EXIT",
    "EVENTS",
    "MAX_INPUT",
    "RUNTIMES",
    "Answer",
    "HookInput",
    "HookInputError",
    "allow_with",
    "block",
    "deny",
    "no_objection",
    "parse_input",
    "session_context",
]

RUNTIMES = ("claude-code", "codex")
EVENTS = ("PreToolUse", "PostToolUse", "SessionStart", "SessionEnd")
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse"})
BLOCK_EXIT = 2
# A Write of a large file carries its whole content; anything beyond this is
# not a hook call we can judge in the time a hook has.
MAX_INPUT = 64 * 1024 * 1024


class HookInputError(ValueError):
    """The input is not a hook call this guard can answer (fail closed)."""


@dataclass(frozen=True, slots=True)
class HookInput:
    """One hook call, validated."""

    runtime: str
    event: str
    session_id: str
    cwd: str
    transcript_path: str | None = None
    tool_name: str | None = None
    tool_input: Mapping[str, Any] | None = None
    tool_use_id: str | None = None
    source: str | None = None  # SessionStart: startup, resume, clear, compact
    reason: str | None = None  # SessionEnd: why it ended


@dataclass(frozen=True, slots=True)
class Answer:
    """What the hook prints and how it exits."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


def parse_input(runtime: str, text: str) -> HookInput:
    """Validate one hook call.

    Raises:
        HookInputError: not JSON, not an object, an unknown event, or a
            field missing or of the wrong type.
    """
    if runtime not in RUNTIMES:
        raise HookInputError(f"unknown runtime {runtime!r} (one of {RUNTIMES})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HookInputError(f"input is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HookInputError("input is not a JSON object")
    event = _text(data, "hook_event_name")
    if event not in EVENTS:
        raise HookInputError(f"no handler for event {event!r} (handled: {EVENTS})")
    cwd = _text(data, "cwd")
    if not PurePath(cwd).is_absolute():
        raise HookInputError(f"cwd {cwd!r} is not an absolute path")
    fields: dict[str, Any] = {
        "runtime": runtime,
        "event": event,
        "session_id": _text(data, "session_id"),
        "cwd": cwd,
        "transcript_path": _optional_text(data, "transcript_path"),
        "source": _optional_text(data, "source"),
        "reason": _optional_text(data, "reason"),
    }
    if event in TOOL_EVENTS:
        fields["tool_name"] = _text(data, "tool_name")
        fields["tool_use_id"] = _optional_text(data, "tool_use_id")
        tool_input = data.get("tool_input")
        if not isinstance(tool_input, dict):
            raise HookInputError("tool_input is missing or not an object")
        fields["tool_input"] = tool_input
    return HookInput(**fields)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise HookInputError(f"{key} is missing or not a non-empty string")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HookInputError(f"{key} is not a string")
    return value


def _specific(event: str, **fields: Any) -> str:  # noqa: ANN401 - JSON values
    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": event, **fields}},
        ensure_ascii=False,
    )


def allow_with(updated_input: Mapping[str, Any]) -> Answer:
    """PreToolUse: run the tool, with this input instead of the model's."""
    return Answer(
        stdout=_specific(
            "PreToolUse", permissionDecision="allow", updatedInput=dict(updated_input)
        )
    )


def deny(reason: str) -> Answer:
    """PreToolUse: the tool does not run; the model reads ``reason``."""
    return Answer(
        stdout=_specific(
            "PreToolUse", permissionDecision="deny", permissionDecisionReason=reason
        )
    )


def session_context(event: str, text: str) -> Answer:
    """SessionStart: text the runtime adds to the model's context."""
    return Answer(stdout=_specific(event, additionalContext=text))


def no_objection(note: str = "") -> Answer:
    """Exit 0 without a decision; ``note`` goes to stderr (the runtime's log)."""
    return Answer(stderr=note)


def block(message: str) -> Answer:
    """The runtime's block answer: exit 2, one line on stderr."""
    line = " ".join(message.split()) or "guard: hook: blocked"
    return Answer(exit_code=BLOCK_EXIT, stderr=line)
