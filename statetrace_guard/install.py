"""``guard install claude-code|codex``: wire ``guard hook`` into a runtime's config.

Both runtimes read hooks from JSON of one shape: ``{"hooks": {EVENT: [{"matcher":
REGEX, "hooks": [{"type": "command", "command": TEXT}]}]}}``.

* Claude Code: ``.claude/settings.json`` in the workspace (``--scope
  project``) or ``~/.claude/settings.json`` (``--scope user``;
  ``$CLAUDE_CONFIG_DIR`` when set). The file holds every other setting too.
* Codex: ``.codex/hooks.json`` in the workspace or ``$CODEX_HOME/hooks.json``
  (default ``~/.codex``).

The merge touches only guard's own hook entries (a ``command`` ending in
``hook RUNTIME`` that runs guard): they are removed, then added afresh, so
installing twice changes nothing and uninstalling leaves every other hook,
matcher group and setting as it was. A file that is not a JSON object is
refused, never overwritten.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from statetrace_guard.errors import UsageError

__all__ = [
    "CODEX_TRUST_NOTE",
    "EVENTS",
    "Change",
    "Scope",
    "apply_changes",
    "config_path",
    "hook_command",
    "install_hooks",
    "is_guard_hook",
    "read_config",
    "uninstall_hooks",
]

Scope = Literal["project", "user"]

# event -> matcher (None: the event has no tool to match)
EVENTS: dict[str, dict[str, str | None]] = {
    "claude-code": {
        "PreToolUse": "Bash|Edit|Write|MultiEdit|NotebookEdit",
        "PostToolUse": "Edit|Write|MultiEdit|NotebookEdit",
        "SessionStart": None,
        "SessionEnd": None,
    },
    "codex": {
        "PreToolUse": "Bash|apply_patch",
        "PostToolUse": "apply_patch",
        "SessionStart": None,
        "SessionEnd": None,
    },
}

CODEX_TRUST_NOTE = (
    "Codex runs only hooks it trusts. For vetted automation: "
    "`codex exec --dangerously-bypass-hook-trust ...`. For interactive use: "
    "review and trust the hooks when Codex asks (project hooks load only in "
    "a trusted project: run `codex --trust` there once, or add "
    '[projects."<workspace>"] trust_level = "trusted" to '
    "$CODEX_HOME/config.toml)."
)


@dataclass(frozen=True, slots=True)
class Change:
    """What an install or uninstall did (or would do) to one config file."""

    path: Path
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    lines: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when the file's content changes."""
        return self.before != self.after


def config_path(
    runtime: str, scope: Scope, workspace: Path, env: Mapping[str, str]
) -> Path:
    """The file guard's hooks go into for this runtime and scope."""
    home = Path(env.get("HOME") or Path.home())
    if runtime == "claude-code":
        if scope == "project":
            return workspace / ".claude" / "settings.json"
        return Path(env.get("CLAUDE_CONFIG_DIR") or home / ".claude") / "settings.json"
    if runtime == "codex":
        if scope == "project":
            return workspace / ".codex" / "hooks.json"
        return Path(env.get("CODEX_HOME") or home / ".codex") / "hooks.json"
    raise UsageError(f"unknown runtime {runtime!r}", hint="claude-code or codex")


def hook_command(guard: Sequence[str], runtime: str) -> str:
    """The shell command the runtime runs: this guard, by absolute path."""
    return shlex.join([*guard, "hook", runtime])


def is_guard_hook(hook: object, runtime: str) -> bool:
    """True for a hook entry that runs ``guard hook RUNTIME`` (any guard)."""
    if not isinstance(hook, dict) or not isinstance(hook.get("command"), str):
        return False
    try:
        words = shlex.split(hook["command"])
    except ValueError:
        return False
    if words[-2:] != ["hook", runtime]:
        return False
    program = words[:-2]
    return bool(program) and (
        Path(program[-1]).name in {"guard", "guard.exe"}
        or program[-2:] == ["-m", "statetrace_guard"]
    )


def read_config(path: Path) -> dict[str, Any]:
    """The file's JSON object ({} when it does not exist).

    Raises:
        UsageError: it is unreadable or not a JSON object (never overwritten).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise UsageError(
            f"{path} is not valid JSON ({exc})", hint="fix it, then install again"
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} does not hold a JSON object")
    if not isinstance(data.get("hooks", {}), dict):
        raise UsageError(f"{path}: `hooks` is not an object")
    return data


def _without_guard(config: Mapping[str, Any], runtime: str) -> dict[str, Any]:
    """The config with every guard hook entry (and groups left empty by it) gone."""
    hooks = dict(config.get("hooks") or {})
    for event, groups in list(hooks.items()):
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            entries = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(entries, list):
                kept.append(group)
                continue
            remaining = [
                entry for entry in entries if not is_guard_hook(entry, runtime)
            ]
            if remaining or not entries:
                kept.append({**group, "hooks": remaining})
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    # Keys keep their places: an uninstall gives back the file as it was.
    result = {
        key: hooks if key == "hooks" else value
        for key, value in config.items()
        if key != "hooks" or hooks
    }
    if hooks and "hooks" not in result:
        result["hooks"] = hooks
    return result


def install_hooks(path: Path, runtime: str, guard: Sequence[str]) -> Change:
    """Guard's hooks merged into the file's config (not yet written)."""
    before = read_config(path)
    after = _without_guard(before, runtime)
    hooks = dict(after.get("hooks") or {})
    command = hook_command(guard, runtime)
    for event, matcher in EVENTS[runtime].items():
        group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
        group["hooks"] = [{"type": "command", "command": command}]
        hooks[event] = [*hooks.get(event, []), group]
    after["hooks"] = hooks
    lines = tuple(
        f"{'kept' if before == after else 'added'} {event} hook"
        + (f" for {matcher}" if matcher else "")
        + f": {command}"
        for event, matcher in EVENTS[runtime].items()
    )
    return Change(path, before, after, lines)


def uninstall_hooks(path: Path, runtime: str) -> Change:
    """The file's config without guard's hooks (not yet written)."""
    before = read_config(path)
    after = _without_guard(before, runtime)
    removed = [
        event
        for event in EVENTS[runtime]
        if json.dumps(before.get("hooks", {}).get(event))
        != json.dumps(after.get("hooks", {}).get(event))
    ]
    lines = tuple(f"removed {event} hook" for event in removed) or (
        "no guard hooks were installed",
    )
    return Change(path, before, after, lines)


def apply_changes(change: Change) -> None:
    """Write the new config (atomically, keeping the file's mode).

    Raises:
        UsageError: the file cannot be written.
    """
    if not change.changed:
        return
    path = change.path
    text = json.dumps(change.after, indent=2, ensure_ascii=False) + "\n"
    partial = path.with_name(f".{path.name}.guard-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        if path.exists():
            partial.chmod(path.stat().st_mode & 0o7777)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
