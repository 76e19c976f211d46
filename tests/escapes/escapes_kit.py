"""What the escape tests share: the test policy, git as the operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ESCAPES_POLICY = str(ASSETS / "policies" / "escapes.toml")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git as the operator does: outside any guard."""
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def finished_records(workspace: Path) -> list[dict]:
    """Every ``command.finished`` record of the workspace's sessions."""
    out = []
    for path in sorted((workspace / "Logs" / "Sessions").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("event") == "command.finished":
                out.append(record)
    return out
