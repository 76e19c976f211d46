"""Resolve what one guard invocation works with: level, policy, paths.

Options win over environment variables, which win over defaults:
``--level`` > ``STATETRACE_GUARD_LEVEL`` > L1; ``--policy`` > ``guard.toml`` at
the workspace root (once the operator accepted it, see
:mod:`statetrace_guard.workspaces`) > the built-in policy; ``--log-dir`` >
``Logs/`` under the workspace root (the git top level, else the current
directory).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from statetrace_guard.decision import Enforcement
from statetrace_guard.errors import PolicyError, UsageError
from statetrace_guard.evaluate import POLICY_FILE_NAME, Place, make_place
from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir, guard_home, workspace_root
from statetrace_guard.policy import CompiledPolicy, load_policy, load_policy_bytes
from statetrace_guard.workspaces import check_policy_pin

if TYPE_CHECKING:
    from statetrace_guard.guardrails.inspect import Inspector

__all__ = [
    "LEVEL_VARIABLE",
    "POLICY_FILE_NAME",
    "Invocation",
    "machine_enforcement",
    "resolve_invocation",
    "resolve_level",
    "session_task",
]

LEVEL_VARIABLE = "STATETRACE_GUARD_LEVEL"


@dataclass(frozen=True, slots=True)
class Invocation:
    """Everything resolved for one command: computed once, passed explicitly."""

    level: Level
    # The level the user asked for (option or variable); None when defaulted,
    # so a session's approved level is not lowered by the default.
    requested_level: Level | None
    policy: CompiledPolicy
    policy_file: Path | None
    workspace: Path  # resolved (workspace_root)
    log_dir: Path
    cwd: Path
    env: Mapping[str, str]
    place: Place

    def inspector(self, task_id: str | None) -> Inspector:
        """What the guardrails look at the repository with, for this command."""
        from statetrace_guard.guardrails.inspect import (  # noqa: PLC0415 - judging path
            Inspector,
        )

        return Inspector(
            workspace=self.place.decide.workspace,
            cwd=self.place.decide.cwd,
            log_dir=str(self.log_dir),
            env=self.env,
            task_id=task_id,
        )


def resolve_level(option: str | None, env: Mapping[str, str]) -> Level:
    """The session level from the option, the variable, or the default L1."""
    text = option or env.get(LEVEL_VARIABLE) or "L1"
    try:
        return Level.parse(text)
    except ValueError as exc:
        source = "--level" if option else LEVEL_VARIABLE
        raise UsageError(f"{source}: {exc}") from exc


def resolve_invocation(
    *,
    level: str | None,
    policy: Path | None,
    log_dir: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    enforcement: Enforcement | None = None,
) -> Invocation:
    """Resolve options against the environment and the file system.

    ``enforcement`` None asks this machine whether its kernel enforces the
    levels' envelopes; ``"none"`` answers as a machine without them would.
    """
    environ = dict(os.environ if env is None else env)
    here = Path.cwd() if cwd is None else cwd
    workspace = workspace_root(here)
    if policy is not None:
        policy_file: Path | None = policy
        compiled = load_policy(policy)
    else:
        policy_file, compiled = _trusted_workspace_policy(workspace)
    if policy_file is not None:
        _check_examples_once(compiled)
    logs = (log_dir or default_log_dir(workspace)).absolute()
    explicit = level or environ.get(LEVEL_VARIABLE)
    resolved = resolve_level(level, environ)
    return Invocation(
        level=resolved,
        requested_level=resolved if explicit else None,
        policy=compiled,
        policy_file=policy_file,
        workspace=workspace,
        log_dir=logs,
        cwd=here,
        env=environ,
        place=make_place(
            here,
            workspace,
            logs,
            policy_file,
            environ,
            machine_enforcement() if enforcement is None else enforcement,
        ),
    )


def machine_enforcement() -> Enforcement:
    """``kernel`` where this machine contains code in the level's envelope."""
    from statetrace_guard.sandbox import containment_available  # noqa: PLC0415

    return "kernel" if containment_available() else "none"


def _check_examples_once(policy: CompiledPolicy) -> None:
    """Check a policy file's rule examples once per content.

    Examples need the classifier; a marker named by the policy's sha256 in
    guard's home records that this exact content passed, so later loads of
    the same file skip the work. (The built-in policy's examples are checked
    by the test suite.)
    """
    marker = guard_home() / "cache" / f"policy-{policy.sha256}.examples-ok"
    if marker.exists():
        return
    from statetrace_guard.policy_examples import check_examples  # noqa: PLC0415

    check_examples(policy)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        return  # a read-only home only costs the check again next time


def _trusted_workspace_policy(workspace: Path) -> tuple[Path | None, CompiledPolicy]:
    """The workspace's ``guard.toml`` if the operator accepted it, else the built-in.

    Its bytes are read once: the digest checked against the pin is the one
    of the policy then compiled (see :mod:`statetrace_guard.workspaces`).
    ``workspace`` comes resolved from :func:`workspace_root`.

    Raises:
        PolicyError: the file is unreadable, invalid, or not accepted.
    """
    candidate = workspace / POLICY_FILE_NAME
    raw: bytes | None = None
    if candidate.is_file():
        try:
            raw = candidate.read_bytes()
        except OSError as exc:
            raise PolicyError(
                f"cannot read: {exc.strerror}", file=str(candidate)
            ) from exc
    digest = None if raw is None else hashlib.sha256(raw).hexdigest()
    check_policy_pin(str(workspace), str(candidate), digest)
    if raw is None:
        return None, load_policy(None)
    return candidate, load_policy_bytes(raw, str(candidate))


def session_task(invocation: Invocation) -> str | None:
    """The task of the session ``$STATETRACE_GUARD_SESSION`` names, if any.

    ``guard check`` and ``explain`` judge as the session would (its task is
    what the ADR stop asks for); a missing or unreadable session has none.
    """
    session_id = invocation.env.get("STATETRACE_GUARD_SESSION")
    if not session_id:
        return None
    from statetrace_guard.errors import AuditError  # noqa: PLC0415
    from statetrace_guard.sessions.store import load_session  # noqa: PLC0415

    try:
        state = load_session(invocation.log_dir, session_id, details=False)
    except AuditError:
        return None
    if state.start is None or not state.start.task_ids:
        return None
    return state.start.task_ids[0]
