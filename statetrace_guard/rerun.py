"""``guard replay --execute``: run recorded commands again and compare statuses.

Each recorded allowed command runs again through ``guard run`` (a real
process, judged, recorded and enforced like any other) in a scratch
workspace, in a session of its own, at its recorded level (or the one
given); the working directory it had is moved into the scratch workspace.
The caller renders the results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statetrace_guard.levels import Level
from statetrace_guard.paths import default_log_dir, workspace_root
from statetrace_guard.replay import RecordedCommand
from statetrace_guard.session_ids import allocate_session_id

__all__ = ["Rerun", "rerun_commands"]


@dataclass(frozen=True, slots=True)
class Rerun:
    """One command run again: the recorded and the new exit status."""

    command: RecordedCommand
    status: int

    @property
    def differs(self) -> bool:
        """True when the recording has a status and it is not the new one."""
        return (
            self.command.exit_status is not None
            and self.command.exit_status != self.status
        )

    def as_json(self) -> dict[str, Any]:
        """One ``--json`` line for the re-run command."""
        cmd = self.command
        return {
            "schema_version": 1,
            "kind": "execute",
            "source": cmd.source,
            "line": cmd.line,
            "argv": list(cmd.argv),
            "recorded_exit": cmd.exit_status,
            "exit": self.status,
            "differs": self.differs,
        }


def rerun_commands(
    commands: Sequence[RecordedCommand],
    workspace: Path,
    policy_file: Path | None,
    level: Level | None,
) -> tuple[str, list[Rerun]]:
    """Re-run the recorded allowed commands in order.

    Returns:
        The scratch session's id and one result per command run.

    Raises:
        AuditError: the scratch session cannot be created.
    """
    root = workspace_root(workspace)
    session = allocate_session_id(default_log_dir(root) / "Sessions")
    reruns = [
        _rerun(command, root, session, policy_file, level)
        for command in commands
        if command.decision == "allow"
    ]
    return session, reruns


def _rerun(
    command: RecordedCommand,
    root: Path,
    session: str,
    policy_file: Path | None,
    level: Level | None,
) -> Rerun:
    """Run one command through ``guard run`` in the scratch workspace."""
    argv = [sys.executable, "-m", "statetrace_guard", "run", "--session", session]
    argv += ["--level", (command.level if level is None else level).name]
    if policy_file is not None:
        argv += ["--policy", str(policy_file.resolve())]
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"STATETRACE_GUARD_SESSION", "STATETRACE_GUARD_LEVEL"}
    }
    done = subprocess.run(
        [*argv, "--", *command.argv],
        cwd=_cwd_in(root, command.cwd),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return Rerun(command, done.returncode)


def _cwd_in(root: Path, recorded_cwd: str) -> Path:
    """The recorded cwd moved into the scratch workspace (its root if absent)."""
    recorded = Path(recorded_cwd)
    if not recorded.is_dir():
        return root
    try:
        relative = recorded.resolve().relative_to(workspace_root(recorded))
    except ValueError:
        return root
    moved = root / relative
    return moved if moved.is_dir() else root
