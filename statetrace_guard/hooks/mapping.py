"""The runtime's session id -> a guard session.

The map lives beside the session logs, in guard-owned territory that no
guarded program and no file tool may write:
``<log-dir>/Sessions/runtimes/<runtime>-<sha256(runtime session id)[:32]>.json``
holding ``session_id`` and, for an ad hoc session, the level it runs at. A
runtime's first hook call (SessionStart, or any tool call when the hooks were
installed mid-session) starts the guard session under a lock; a mapped
session that has ended (the runtime resumed an old conversation) is replaced
by a new one.

The task and plan come from ``STATETRACE_TASK`` (ids separated by commas or
spaces) and ``STATETRACE_PLAN``, else from the workspace file
``.statetrace/task.toml`` (``task`` or ``tasks``, ``plan``, ``role``). With
both, the session is started as ``guard session start`` would (it can then
escalate); without, or when they do not pass its checks, it is an ad hoc
session and :attr:`Mapped.missing` says what was missing. The level is
``STATETRACE_GUARD_LEVEL`` (the operator's), else L1.

Records: ``session.runtime`` (``runtime``, ``runtime_session_id``,
``transcript_path``, ``source``, ``managed``, ``level``, ``missing``,
``replaces``) in the guard session's log when the map is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.errors import AuditError, GuardError
from statetrace_guard.hooks.protocol import HookInput
from statetrace_guard.invocation import Invocation, resolve_level
from statetrace_guard.levels import Level
from statetrace_guard.session_ids import SESSION_ID_PATTERN, allocate_session_id
from statetrace_guard.sessions.store import load_session

__all__ = [
    "EVENT_RUNTIME",
    "PLAN_VARIABLE",
    "ROLE_VARIABLE",
    "TASK_FILE",
    "TASK_VARIABLE",
    "Mapped",
    "TaskSpec",
    "ensure_session",
    "find_session",
    "map_path",
    "task_spec",
]

TASK_VARIABLE = "STATETRACE_TASK"
PLAN_VARIABLE = "STATETRACE_PLAN"
ROLE_VARIABLE = "STATETRACE_ROLE"
TASK_FILE = Path(".statetrace") / "task.toml"
EVENT_RUNTIME = "session.runtime"
_MAP_DIR = "runtimes"
_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True, slots=True)
class Mapped:
    """The guard session a runtime session maps to."""

    session_id: str
    # The level an ad hoc session runs at; None for a started session, whose
    # own log (and approvals) decide.
    ad_hoc_level: Level | None
    created: bool = False
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What ``guard session start`` needs: tasks, plan, role."""

    task_ids: tuple[str, ...]
    plan: str | None
    role: str | None


def map_path(log_dir: Path, runtime: str, runtime_session_id: str) -> Path:
    """The map file for one runtime session (its id hashed: any text is safe)."""
    digest = hashlib.sha256(runtime_session_id.encode("utf-8")).hexdigest()[:32]
    return log_dir / "Sessions" / _MAP_DIR / f"{runtime}-{digest}.json"


def find_session(log_dir: Path, runtime: str, runtime_session_id: str) -> Mapped | None:
    """The mapped session, or None when there is no (valid) map."""
    path = map_path(log_dir, runtime, runtime_session_id)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    session_id = data.get("session_id")
    level = data.get("ad_hoc_level")
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.fullmatch(session_id):
        return None
    try:
        ad_hoc = None if level is None else Level.parse(str(level))
    except ValueError:
        return None
    return Mapped(session_id, ad_hoc)


def _is_open(log_dir: Path, session_id: str) -> bool:
    state = load_session(log_dir, session_id, details=False)
    return state.exists and state.end is None


def ensure_session(invocation: Invocation, hook: HookInput) -> Mapped:
    """The open guard session for this runtime session, started if need be.

    Raises:
        AuditError: the map or the session log cannot be written.
    """
    log_dir = invocation.log_dir
    found = find_session(log_dir, hook.runtime, hook.session_id)
    if found is not None and _is_open(log_dir, found.session_id):
        return found
    from filelock import FileLock, Timeout  # noqa: PLC0415 - only when starting one

    path = map_path(log_dir, hook.runtime, hook.session_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path.parent / ".lock"), timeout=30):
            found = find_session(log_dir, hook.runtime, hook.session_id)
            if found is not None and _is_open(log_dir, found.session_id):
                return found
            mapped = _start(invocation, hook, found)
            _write_map(path, mapped)
    except Timeout as exc:
        raise AuditError(f"{path.parent}: the map lock is held too long") from exc
    except OSError as exc:
        raise AuditError(f"cannot write {path}: {exc.strerror}") from exc
    return mapped


def _write_map(path: Path, mapped: Mapped) -> None:
    level = mapped.ad_hoc_level
    data = {
        "session_id": mapped.session_id,
        "ad_hoc_level": None if level is None else level.name,
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(data) + "\n", encoding="utf-8")
    partial.replace(path)


def task_spec(workspace: Path, env: Mapping[str, str]) -> tuple[TaskSpec, list[str]]:
    """Tasks, plan and role from the variables, else the task file; what is missing."""
    problems: list[str] = []
    complete = env.get(TASK_VARIABLE, "").strip() and env.get(PLAN_VARIABLE)
    from_file = {} if complete else _task_file(workspace, problems)
    tasks = tuple(
        part for part in _SPLIT.split(env.get(TASK_VARIABLE, "")) if part
    ) or _file_tasks(from_file)
    plan = env.get(PLAN_VARIABLE) or _file_text(from_file, "plan")
    role = env.get(ROLE_VARIABLE) or _file_text(from_file, "role")
    if not tasks:
        problems.append(f"no task: set {TASK_VARIABLE} or `task` in {TASK_FILE}")
    if not plan:
        problems.append(f"no plan: set {PLAN_VARIABLE} or `plan` in {TASK_FILE}")
    return TaskSpec(tasks, plan, role), problems


def _task_file(workspace: Path, problems: list[str]) -> dict[str, Any]:
    path = workspace / TASK_FILE
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"cannot read {TASK_FILE}: {exc}")
        return {}


def _file_tasks(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("tasks", data.get("task"))
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _file_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _start(invocation: Invocation, hook: HookInput, previous: Mapped | None) -> Mapped:
    """Start the guard session (managed when possible) and record the mapping."""
    level = resolve_level(None, invocation.env)
    spec, missing = task_spec(invocation.workspace, invocation.env)
    session_id = None
    if not missing:
        session_id = _start_managed(invocation, spec, level, missing)
    mapped = (
        Mapped(session_id, None, created=True)
        if session_id is not None
        else Mapped(
            allocate_session_id(invocation.log_dir / "Sessions"),
            level,
            created=True,
            missing=tuple(missing),
        )
    )
    _record(invocation, hook, mapped, previous)
    return mapped


def _start_managed(
    invocation: Invocation, spec: TaskSpec, level: Level, missing: list[str]
) -> str | None:
    from statetrace_guard.sessions.lifecycle import (  # noqa: PLC0415 - start only
        StartRequest,
        start_session,
    )

    if level > Level.L1:
        missing.append(
            f"a started session begins at L0 or L1, not {level.name} "
            "(the operator's STATETRACE_GUARD_LEVEL); it runs ad hoc"
        )
        return None
    plan = Path(spec.plan or "")
    request = StartRequest(
        task_ids=spec.task_ids,
        plan=plan if plan.is_absolute() else invocation.workspace / plan,
        level=level,
        role=spec.role,
    )
    try:
        return start_session(
            invocation.workspace, invocation.log_dir, invocation.policy, request
        )
    except GuardError as error:
        if isinstance(error, AuditError):
            raise
        missing.append(f"cannot start the session: {error.message}")
        return None


def _record(
    invocation: Invocation, hook: HookInput, mapped: Mapped, previous: Mapped | None
) -> None:
    from statetrace_guard.audit.trail import Trail  # noqa: PLC0415

    settings = invocation.policy.settings
    level = mapped.ad_hoc_level
    trail = Trail(
        invocation.log_dir,
        mapped.session_id,
        durable=settings.durable,
        lock_timeout=settings.lock_timeout_seconds,
        front="direct",
    )
    try:
        trail.event(
            EVENT_RUNTIME,
            {
                "runtime": hook.runtime,
                "runtime_session_id": hook.session_id,
                "transcript_path": hook.transcript_path,
                "source": hook.source or hook.event,
                "managed": mapped.ad_hoc_level is None,
                "level": None if level is None else level.name,
                "missing": list(mapped.missing),
                "replaces": previous.session_id if previous else None,
            },
        )
    finally:
        trail.close()
