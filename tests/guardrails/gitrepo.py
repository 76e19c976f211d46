"""Real git repositories in temporary folders, for the guardrail tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GITHUB = "ghp_" + "A1b2C3d4" * 5
# Payloads the commit guard must refuse: path -> (content, rule).
BAD = {
    "accdb": (
        "Data/WLLS/WLLS.accdb",
        b"\x00\x01\x00\x00Standard ACE DB\x00",
        "commit:access-store",
    ),
    "raw-log": (
        "Logs/IngestionMetrics/raw.json",
        b'{"host": "WLLS-A01"}\n',
        "commit:raw-logs",
    ),
    "aws-key": (
        "config/settings.py",
        b"AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\n",
        "commit:secret",
    ),
    "github-token": (
        "scripts/deploy.sh",
        f"export TOKEN={GITHUB}\n".encode(),
        "commit:secret",
    ),
    "private-key": (
        "keys/deploy_key",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        "commit:secret",
    ),
    "connection-string": (
        "Tools/Open-Db.ps1",
        (
            b'$cs = "Provider=Microsoft.ACE.OLEDB.12.0;Data Source=Data\\x.accdb;'
            b'Jet OLEDB:Database Password=Hunter2;"\n'
        ),
        "commit:secret",
    ),
}
CLEAN = ("src/module.ps1", b"function Get-Thing { 'thing' }\n")
HOOKS_OFF = ("-c", "core.hooksPath=/dev/null")


class Repo:
    """A git repository with an identity and an initial commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.invalid")
        self.git("config", "user.name", "Dev")
        self.write("README.md", b"# repo\n")
        self.commit("init", "README.md")

    def git(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, **(env or {})},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
        return done.stdout.strip()

    def write(self, path: str, content: bytes) -> Path:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(content)
        return full

    def commit(self, message: str, *paths: str) -> str:
        """Commit ``paths`` as a person would, without any hook."""
        if paths:
            self.git("add", "-f", "--", *paths)
        self.git(*HOOKS_OFF, "commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")
