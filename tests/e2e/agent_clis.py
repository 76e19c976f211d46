"""Find (or install) the real agent CLIs for the end-to-end tests.

``@anthropic-ai/claude-code`` (2.1.x) and ``@openai/codex`` (0.169.0) are
installed with npm into a cache folder: ``$GUARD_E2E_NPM_PREFIX``, else
``~/.cache/statetrace-guard-e2e`` (``.ci/run`` installs them there first).
Tests skip only where node or npm is missing; a failed install fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["CLAUDE_PACKAGE", "CODEX_PACKAGE", "npm_prefix", "runtime_binary"]

CLAUDE_PACKAGE = "@anthropic-ai/claude-code@2.1"
CODEX_PACKAGE = "@openai/codex@0.169.0"
_BINARIES = {"claude": CLAUDE_PACKAGE, "codex": CODEX_PACKAGE}


def npm_prefix() -> Path:
    """The cache folder the CLIs are installed into."""
    given = os.environ.get("GUARD_E2E_NPM_PREFIX")
    return Path(given) if given else Path.home() / ".cache" / "statetrace-guard-e2e"


def runtime_binary(name: str) -> Path:
    """The CLI's executable, installed first when missing (skip without node/npm)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed: cannot run the real {name}"
        )
    prefix = npm_prefix()
    binary = prefix / "node_modules" / ".bin" / name
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                *_BINARIES.values(),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, f"npm install failed:\n{result.stderr[-3000:]}"
    assert binary.exists(), f"{binary} missing after npm install"
    return binary
