"""Which tool is which, and the files a file tool writes.

Shell tools: Claude Code's ``Bash``; Codex reports its ``exec_command`` and
shell calls as ``Bash`` too, with ``tool_input.command``. File tools write
files themselves, in the runtime's process, outside any sandbox of ours:
Claude Code's ``Write``, ``Edit`` and ``MultiEdit`` (``file_path``) and
``NotebookEdit`` (``notebook_path``); Codex's ``apply_patch``, whose input is
a patch naming its files (``*** Add File: P``, ``*** Update File: P``,
``*** Delete File: P``, ``*** Move to: P``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from statetrace_guard.hooks.protocol import HookInputError

__all__ = [
    "FILE_TOOLS",
    "SHELL_TOOLS",
    "ToolKind",
    "file_targets",
    "patch_targets",
    "shell_command",
    "tool_kind",
]

ToolKind = Literal["shell", "file"]

SHELL_TOOLS: dict[str, frozenset[str]] = {
    "claude-code": frozenset({"Bash"}),
    "codex": frozenset({"Bash"}),
}
# tool name -> the input field naming the file (None: a patch names them)
FILE_TOOLS: dict[str, dict[str, str | None]] = {
    "claude-code": {
        "Write": "file_path",
        "Edit": "file_path",
        "MultiEdit": "file_path",
        "NotebookEdit": "notebook_path",
    },
    "codex": {"apply_patch": None},
}
_PATCH_FIELDS = ("command", "input", "patch")
_BEGIN = "*** Begin Patch"
_FILE_MARKERS = (
    "*** Add File: ",
    "*** Update File: ",
    "*** Delete File: ",
    "*** Move to: ",
)


def tool_kind(runtime: str, tool_name: str) -> ToolKind | None:
    """``shell``, ``file``, or None for a tool the hook has no rule for."""
    if tool_name in SHELL_TOOLS.get(runtime, ()):
        return "shell"
    if tool_name in FILE_TOOLS.get(runtime, {}):
        return "file"
    return None


def shell_command(tool_input: Mapping[str, Any]) -> str:
    """The command of a shell tool call.

    Raises:
        HookInputError: ``command`` is missing, empty or not a string.
    """
    command = tool_input.get("command")
    if not isinstance(command, str) or not command.strip():
        raise HookInputError("tool_input.command is missing or not a non-empty string")
    return command


def file_targets(
    runtime: str, tool_name: str, tool_input: Mapping[str, Any]
) -> tuple[str, ...]:
    """The paths a file tool call writes, as given (relative to the call's cwd).

    Raises:
        HookInputError: not a file tool, or its input names no file.
    """
    tools = FILE_TOOLS.get(runtime, {})
    if tool_name not in tools:
        raise HookInputError(f"{tool_name} is not a file tool of {runtime}")
    field = tools[tool_name]
    if field is None:
        return patch_targets(_patch_text(tool_input))
    path = tool_input.get(field)
    if not isinstance(path, str) or not path:
        raise HookInputError(f"tool_input.{field} is missing or not a non-empty string")
    return (path,)


def _patch_text(tool_input: Mapping[str, Any]) -> str:
    for field in _PATCH_FIELDS:
        value = tool_input.get(field)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and value[0] == "apply_patch":
            # the older form: {"command": ["apply_patch", PATCH]}
            patch = value[-1]
            if isinstance(patch, str):
                return patch
    raise HookInputError("apply_patch input holds no patch text")


def patch_targets(text: str) -> tuple[str, ...]:
    """Every path an apply_patch patch adds, updates, deletes or moves to.

    Raises:
        HookInputError: not a patch, or one naming no file.
    """
    lines = [line.rstrip("\r") for line in text.splitlines()]
    body = [line for line in lines if line.strip()]
    if not body or body[0].strip() != _BEGIN:
        raise HookInputError("apply_patch input does not start with '*** Begin Patch'")
    paths = []
    for line in lines:
        for marker in _FILE_MARKERS:
            if line.startswith(marker):
                path = line[len(marker) :].strip()
                if not path:
                    raise HookInputError(f"apply_patch: {marker.strip()} names no file")
                paths.append(path)
    if not paths:
        raise HookInputError("apply_patch patch names no file")
    return tuple(dict.fromkeys(paths))
