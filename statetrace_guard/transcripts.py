"""Read the shell commands an agent issued from its runtime's transcript.

Two formats, both JSON Lines, read tolerantly (a line that is not JSON or not
of a known shape is skipped, never an error):

* **Claude Code** session transcripts (``~/.claude/projects/<dir>/<id>.jsonl``).
  Each ``"type": "assistant"`` line wraps an Anthropic Messages API message;
  its ``message.content`` blocks of ``"type": "tool_use"`` with ``"name":
  "Bash"`` carry the command in ``input.command``. The line's ``cwd`` is the
  working directory. The matching ``tool_result`` block (same ``tool_use_id``)
  rides on a later ``"type": "user"`` line; ``is_error`` and an ``Exit code N``
  prefix give the exit status. Followed: the envelope as written by Claude
  Code 1.x-2.1 (``type``, ``uuid``, ``parentUuid``, ``sessionId``, ``cwd``,
  ``timestamp``, ``message``); Anthropic documents the storage path and calls
  the record format internal, so the shape is the one observed in real
  sessions (documented by the txcript project for CLI 0.144-2.1.227).
* **Codex CLI** rollout files (``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``).
  Each line is a ``RolloutLine`` ``{"timestamp", "type", "payload"}`` (codex-rs
  ``protocol.rs``); ``session_meta`` and ``turn_context`` payloads carry
  ``cwd``; ``response_item`` payloads are Responses API items (codex-rs
  ``protocol/src/models.rs``): ``function_call`` items named ``shell`` /
  ``container.exec`` / ``local_shell_call`` (``arguments`` is a JSON string
  with ``command`` as an argv list, plus ``workdir``), ``shell_command``
  (``command`` a string), ``exec_command`` (unified exec: ``cmd`` a string,
  optional ``shell``, ``workdir``), and ``local_shell_call`` items whose
  ``action.command`` is an argv list (``action.working_directory``). The
  ``function_call_output`` with the same ``call_id`` gives the exit status
  (``metadata.exit_code`` in the JSON form, or an ``Exit code: N`` /
  ``Process exited with code N`` line in the text form). Early rollout files
  (2025, before the ``payload`` envelope) hold bare items; those are read too.

A string command becomes ``bash -c COMMAND`` (:func:`statetrace_guard.batch.argv_for`),
which is how both runtimes run it, so the classifier parses the script.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from statetrace_guard.batch import argv_for
from statetrace_guard.errors import AuditError
from statetrace_guard.levels import Level
from statetrace_guard.replay import RecordedCommand

__all__ = [
    "CODEX_SHELL_TOOLS",
    "FORMATS",
    "TranscriptCommand",
    "TranscriptFormat",
    "as_recorded",
    "read_claude_code",
    "read_codex",
    "read_transcript",
]

TranscriptFormat = Literal["claude-code", "codex"]
FORMATS: tuple[TranscriptFormat, ...] = ("claude-code", "codex")
CODEX_SHELL_TOOLS = frozenset(
    {"shell", "container.exec", "local_shell_call", "shell_command", "exec_command"}
)
_EXIT_PATTERNS = (
    re.compile(r"^Exit code:?\s*(-?\d+)", re.MULTILINE),
    re.compile(r"Process exited with code (-?\d+)"),
)
_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})


@dataclass(frozen=True, slots=True)
class TranscriptCommand:
    """One shell command an agent issued.

    Attributes:
        source: the transcript file.
        line: the 1-based line of the tool call.
        argv: the command as the runtime ran it.
        cwd: its working directory, when the transcript says.
        call_id: the tool call's id, pairing it with its result.
        exit_status: the exit status the transcript reports, when it does.
        ts: the time of the tool call, when recorded.
    """

    source: str
    line: int
    argv: tuple[str, ...]
    cwd: str | None = None
    call_id: str | None = None
    exit_status: int | None = None
    ts: str | None = None


def read_transcript(path: Path, fmt: TranscriptFormat) -> list[TranscriptCommand]:
    """Read the shell commands of one transcript in format ``fmt``.

    Raises:
        AuditError: the file cannot be read.
    """
    reader = read_claude_code if fmt == "claude-code" else read_codex
    return reader(path)


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every JSON object line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield number, value


def _blocks(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def read_claude_code(path: Path) -> list[TranscriptCommand]:
    """Read the Bash tool calls of a Claude Code session transcript.

    Raises:
        AuditError: the file cannot be read.
    """
    calls: list[TranscriptCommand] = []
    exits: dict[str, int] = {}
    for number, entry in _objects(path):
        kind = entry.get("type")
        if kind == "assistant":
            calls.extend(_claude_calls(entry, number, str(path)))
        elif kind == "user":
            exits.update(_claude_exits(entry))
    return [_with_exit(call, exits) for call in calls]


def _claude_calls(
    entry: Mapping[str, Any], number: int, source: str
) -> Iterator[TranscriptCommand]:
    cwd = _text(entry.get("cwd"))
    for block in _blocks(entry):
        if block.get("type") != "tool_use" or block.get("name") != "Bash":
            continue
        tool_input = block.get("input")
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        if isinstance(command, str) and command.strip():
            yield TranscriptCommand(
                source=source,
                line=number,
                argv=argv_for(command, "bash"),
                cwd=cwd,
                call_id=_text(block.get("id")),
                ts=_text(entry.get("timestamp")),
            )


def _claude_exits(entry: Mapping[str, Any]) -> dict[str, int]:
    """Exit statuses of the tool results on a user line, by tool_use_id."""
    found: dict[str, int] = {}
    for block in _blocks(entry):
        call_id = block.get("tool_use_id")
        if block.get("type") != "tool_result" or not isinstance(call_id, str):
            continue
        status = _exit_in(_result_text(block.get("content")))
        if status is None:
            status = 1 if block.get("is_error") is True else 0
        found[call_id] = status
    return found


def _result_text(content: object) -> str:
    """The text of a tool_result's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(item.get("text", ""))
            for item in content
            if isinstance(item, dict) and item.get("type") == "text"
        )
    return ""


def read_codex(path: Path) -> list[TranscriptCommand]:
    """Read the shell calls of a Codex CLI rollout file.

    Raises:
        AuditError: the file cannot be read.
    """
    calls: list[TranscriptCommand] = []
    exits: dict[str, int] = {}
    cwd: str | None = None
    for number, line in _objects(path):
        kind, payload = _codex_item(line)
        if kind in {"session_meta", "turn_context"}:
            cwd = _text(payload.get("cwd")) or cwd
        elif kind == "response_item":
            call = _codex_call(payload, number, str(path), cwd)
            if call is not None:
                calls.append(_with_ts(call, _text(line.get("timestamp"))))
            exits.update(_codex_exit(payload))
    return [_with_exit(call, exits) for call in calls]


def _with_ts(call: TranscriptCommand, ts: str | None) -> TranscriptCommand:
    """Return ``call`` with its time set (when it has none)."""
    if call.ts is not None or ts is None:
        return call
    return replace(call, ts=ts)


def _codex_item(line: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return ``(kind, payload)``; a bare legacy item counts as a response item."""
    payload = line.get("payload")
    kind = line.get("type")
    if isinstance(payload, dict) and isinstance(kind, str):
        return kind, payload
    if kind in {"function_call", "local_shell_call", "function_call_output"}:
        return "response_item", dict(line)
    return "", {}


def _codex_call(
    item: Mapping[str, Any], number: int, source: str, cwd: str | None
) -> TranscriptCommand | None:
    kind = item.get("type")
    call_id = _text(item.get("call_id")) or _text(item.get("id"))
    if kind == "local_shell_call":
        action = item.get("action")
        if not isinstance(action, dict):
            return None
        argv = _argv_list(action.get("command"))
        workdir = _text(action.get("working_directory"))
    elif kind == "function_call" and item.get("name") in CODEX_SHELL_TOOLS:
        argv, workdir = _function_argv(str(item.get("name")), item.get("arguments"))
    else:
        return None
    if not argv:
        return None
    return TranscriptCommand(source, number, argv, _join(cwd, workdir), call_id)


def _function_argv(name: str, arguments: object) -> tuple[tuple[str, ...], str | None]:
    """The argv and workdir of a shell function call's JSON arguments."""
    args = _json_object(arguments)
    workdir = _text(args.get("workdir"))
    command = args.get("command", args.get("cmd"))
    if isinstance(command, list):
        return _argv_list(command), workdir
    if not isinstance(command, str) or not command.strip():
        return (), workdir
    shell = _text(args.get("shell"))
    program = Path(shell).name if shell else "bash"
    if name == "exec_command" and program in _SHELLS and program != "bash":
        return (program, "-c", command), workdir
    return argv_for(command, "bash"), workdir


def _codex_exit(item: Mapping[str, Any]) -> dict[str, int]:
    """The exit status a function or local-shell output reports, by call_id."""
    if item.get("type") not in {"function_call_output", "local_shell_call_output"}:
        return {}
    call_id = _text(item.get("call_id"))
    if call_id is None:
        return {}
    output = item.get("output")
    if isinstance(output, dict):
        output = output.get("content", output.get("output", ""))
    status = _exit_from_output(output)
    return {} if status is None else {call_id: status}


def _exit_from_output(output: object) -> int | None:
    if not isinstance(output, str):
        return None
    parsed = _json_object(output)
    metadata = parsed.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("exit_code"), int):
        return int(metadata["exit_code"])
    return _exit_in(output)


def _exit_in(text: str) -> int | None:
    for pattern in _EXIT_PATTERNS:
        found = pattern.search(text)
        if found:
            return int(found.group(1))
    return None


def _json_object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _argv_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        return ()
    if not all(isinstance(word, str) for word in value):
        return ()
    return tuple(value)


def _join(cwd: str | None, workdir: str | None) -> str | None:
    if not workdir:
        return cwd
    if workdir.startswith("/") or cwd is None:
        return workdir
    return f"{cwd.rstrip('/')}/{workdir}"


def _with_exit(call: TranscriptCommand, exits: Mapping[str, int]) -> TranscriptCommand:
    status = exits.get(call.call_id) if call.call_id else None
    return call if status is None else replace(call, exit_status=status)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_recorded(
    calls: Iterable[TranscriptCommand], level: Level
) -> list[RecordedCommand]:
    """Turn transcript commands into commands a replay can judge.

    The runtime ran each of them, so the recorded decision is ``allow``; a
    transcript records nothing else the guard decides, so only the decision
    is compared ("now blocked" means the policy would have blocked it).

    Args:
        calls: the commands read from a transcript.
        level: the level to judge them at.

    Returns:
        One recorded command per call, in order.
    """
    return [
        RecordedCommand(
            source=call.source,
            line=call.line,
            argv=call.argv,
            level=level,
            cwd=call.cwd or ".",
            decision="allow",
            exit_status=call.exit_status,
            compared=("decision",),
        )
        for call in calls
    ]
