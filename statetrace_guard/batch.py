"""``guard check --batch``: judge JSON Lines of commands, in order.

Each input line is ``{"argv": [...], "level": "L1"}`` or
``{"command": "...", "shell": "bash"|"pwsh", "level": "L1"}``, optionally with
``"env": {...}`` (the opt-in variables as the command would see them). Each
output line is the same object ``guard check --json`` prints; a malformed
line (not UTF-8, not JSON, a ``level`` that is not a level name, both
``argv`` and ``command``, ...) gives ``{"schema_version": 1, "line": N,
"error": "..."}`` and the batch goes on.

Batches repeat themselves (a session runs the same few commands again and
again), so within one batch an input line seen before gets the answer it got
then, as text, without parsing, judging or encoding it again. Nothing runs
during a batch, so the file system the paths resolve through is taken as it
was for the whole batch. Across batches only commands that write nothing are
remembered (their answer does not depend on the file system at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from statetrace_guard.evaluate import Place, evaluate
from statetrace_guard.levels import Level
from statetrace_guard.policy import CompiledPolicy
from statetrace_guard.result import SCHEMA_VERSION, verdict_json

__all__ = ["BatchLine", "BatchStats", "argv_for", "judge_lines", "parse_line"]

_SHELL_PREFIX: Mapping[str, tuple[str, ...]] = {
    "bash": ("bash", "-c"),
    "sh": ("sh", "-c"),
    "pwsh": ("pwsh", "-NoProfile", "-Command"),
    "powershell": ("pwsh", "-NoProfile", "-Command"),
    "cmd": ("cmd", "/c"),
}


_BATCH_MEMO: dict[tuple[object, ...], dict[str, Any]] = {}
_BATCH_MEMO_LIMIT = 16384


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One well-formed input line."""

    argv: tuple[str, ...]
    level: Level
    env: Mapping[str, str] | None


@dataclass(slots=True)
class BatchStats:
    """Counts for the summary: judged, allowed, blocked, malformed."""

    judged: int = 0
    allowed: int = 0
    blocked: int = 0
    malformed: int = 0


def argv_for(command: str, shell: str) -> tuple[str, ...]:
    """The argv that runs ``command`` in ``shell`` (``exec`` splits words)."""
    if shell == "exec":
        import shlex  # noqa: PLC0415 - only exec-shell lines need it

        return tuple(shlex.split(command))
    prefix = _SHELL_PREFIX.get(shell)
    if prefix is None:
        msg = f"unknown shell {shell!r} (bash, sh, pwsh, cmd or exec)"
        raise ValueError(msg)
    return (*prefix, command)


def parse_line(text: str, default_level: Level) -> BatchLine:
    """Read one JSON line; raise ValueError with a one-line reason."""
    data = json.loads(text)
    if not isinstance(data, dict):
        msg = "each line must be a JSON object"
        raise TypeError(msg)
    argv = _argv_of(data)
    level = _level_of(data, default_level)
    env = data.get("env")
    if env is not None and not _is_str_mapping(env):
        msg = '"env" must map names to strings'
        raise ValueError(msg)
    return BatchLine(argv=argv, level=level, env=env)


def _level_of(data: Mapping[str, Any], default: Level) -> Level:
    if "level" not in data:
        return default
    level = data["level"]
    if not isinstance(level, str):
        msg = '"level" must be a string (L0, L1, L2 or L3)'
        raise ValueError(msg)  # noqa: TRY004 - one error kind for every bad line
    return Level.parse(level)


def judge_lines(
    lines: Iterable[str | bytes],
    policy: CompiledPolicy,
    place: Place,
    default_level: Level,
    stats: BatchStats,
) -> Iterator[str]:
    """Yield one result, as a line of JSON text, per non-blank input line."""
    seen: dict[str, tuple[str, bool]] = {}  # this batch's answers by input line
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            stats.malformed += 1
            yield _malformed(number, f"not UTF-8 (byte {exc.start})")
            continue
        key = text.strip()
        if not key:
            continue
        answer = seen.get(key)
        if answer is None:
            try:
                line = parse_line(text, default_level)
            except (ValueError, TypeError, KeyError) as exc:
                stats.malformed += 1
                yield _encode(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "line": number,
                        "error": str(exc),
                    }
                )
                continue
            result = _verdict_of(line, policy, place)
            answer = seen[key] = (_encode(result), result["decision"] == "allow")
        stats.judged += 1
        if answer[1]:
            stats.allowed += 1
        else:
            stats.blocked += 1
        yield answer[0]


def _malformed(number: int, error: str) -> str:
    return _encode({"schema_version": SCHEMA_VERSION, "line": number, "error": error})


def _encode(result: Mapping[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False)


def _verdict_of(
    line: BatchLine, policy: CompiledPolicy, place: Place
) -> dict[str, Any]:
    """The result object; repeated lines are judged once (see NOTE)."""
    # NOTE(speed): recorded sessions repeat the same commands many times. The
    # answer is a function of the line and the policy, except for commands
    # that write (their paths resolve through the file system), which are
    # never memoised.
    env = tuple(sorted((line.env or {}).items())) if line.env is not None else None
    key = (line.argv, line.level, env, policy.sha256)
    cached = _BATCH_MEMO.get(key)
    if cached is not None:
        return dict(cached)
    here = place
    if line.env is not None:
        here = replace(place, decide=replace(place.decide, env=line.env))
    verdict = evaluate(line.argv, line.level, policy, here).verdict
    result = verdict_json(verdict)
    result["argv"] = list(line.argv)
    if not any(item.command.written for item in verdict.commands):
        if len(_BATCH_MEMO) >= _BATCH_MEMO_LIMIT:
            _BATCH_MEMO.clear()
        _BATCH_MEMO[key] = result
    return dict(result)


def _argv_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    if "argv" in data and "command" in data:
        # Judging one of them would let the other pass unseen.
        msg = 'a line has "argv" or "command", not both'
        raise ValueError(msg)
    if "argv" in data:
        argv = data["argv"]
        if not isinstance(argv, list) or not argv or not _all_str(argv):
            msg = '"argv" must be a non-empty list of strings'
            raise ValueError(msg)
        return tuple(argv)
    command = data.get("command")
    if not isinstance(command, str):
        msg = 'each line needs "argv" (a list) or "command" (a string)'
        raise ValueError(msg)  # noqa: TRY004 - one error kind for every bad line
    return argv_for(command, str(data.get("shell", "bash")))


def _all_str(values: Sequence[object]) -> bool:
    return all(isinstance(value, str) for value in values)


def _is_str_mapping(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )
