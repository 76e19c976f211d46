"""Nested repositories inside the workspace keep their .git read-only below L2.

Git reads a repository's config and runs its hooks whenever the operator
works in that folder (``git -C vendor/lib status`` runs ``core.fsmonitor``).
Before: only the workspace's own ``.git/hooks`` and ``.git/config`` were
bound read-only, so an L1 program planted a hook and an fsmonitor command in
an existing nested clone, and the sweep (which does not enter ``.git``) did
not see it. Each attack runs for real through ``guard run``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import isolation_kit
import pytest
from escapes_kit import git
from isolation_kit import assert_via, attack, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
]
run_path = isolation_kit.run_path

PLANT = """
import os
out = []
for path in ("vendor/lib/.git/hooks/pre-commit", "vendor/lib/.git/config",
             "vendor/lib/.git/commondir"):
    try:
        with open(path, "a") as handle:
            handle.write("[core]\\n\\tfsmonitor = touch {proof}\\n")
        out.append("wrote " + path)
    except OSError as error:
        out.append(f"refused {path}: {error.strerror}")
try:
    os.rename("vendor/lib", "vendor/lib2")
    os.mkdir("vendor/lib")
    out.append("renamed")
except OSError as error:
    out.append(f"rename refused: {error.strerror}")
print("\\n".join(out))
"""


@pytest.fixture
def nested(workspace: Path) -> Path:
    """An existing clone two levels down, as a vendored library would be."""
    lib = workspace / "vendor" / "lib"
    lib.mkdir(parents=True)
    assert git(lib, "init", "-q").returncode == 0
    return lib


def test_l1_cannot_plant_in_a_nested_repository(workspace, nested, run_path, tmp_path):
    """Hooks, config and commondir of the nested .git are read-only; it keeps its name."""
    proof = tmp_path / "fsmonitor-ran"
    config = (nested / ".git" / "config").read_bytes()
    result = attack(workspace, py(PLANT.replace("{proof}", str(proof))), level="L1")
    assert result.returncode == 0, result.stderr
    assert "wrote" not in result.stdout
    assert result.stdout.count("Read-only file system") == 3
    assert "rename refused: Device or resource busy" in result.stdout
    assert_via(workspace, run_path)
    assert (nested / ".git" / "config").read_bytes() == config
    assert not (nested / ".git" / "hooks" / "pre-commit").exists()
    subprocess.run(["git", "status"], cwd=nested, capture_output=True, check=True)
    assert not proof.exists()  # the operator's git ran nothing planted


def test_l2_may_write_a_nested_repository(workspace, nested, tmp_path):
    """Protection below L2 only, like the workspace's own .git."""
    result = attack(
        workspace, py(PLANT.replace("{proof}", str(tmp_path / "p"))), level="L2"
    )
    assert result.returncode == 0, result.stderr
    assert "wrote vendor/lib/.git/config" in result.stdout
