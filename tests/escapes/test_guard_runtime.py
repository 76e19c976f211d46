"""Guard's own code and interpreter stay read-only below L3 (red team).

Found by the hardening review: with guard installed in the project's own
virtual environment inside the workspace (a dev dependency), an L1 program
wrote a ``.pth`` file into its ``site-packages`` (and could rewrite
``bin/guard``): the next ``guard`` the agent runtime started, outside every
sandbox, ran the program's code. The attack runs for real, through a guard
started from a virtual environment inside the workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from isolation_kit import ISOLATION_POLICY, VENV_PATH, py

import statetrace_guard

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
]

PLANT = """
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "a") as handle:
            handle.write("import os; os.system('touch /tmp/planted')\\n")
        print("wrote", path)
    except OSError as error:
        print("refused", path, error.strerror)
"""


@pytest.fixture
def venv(workspace: Path) -> Path:
    """A virtual environment in the workspace that runs this guard."""
    root = workspace / ".venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True
    )
    site = next(root.glob("lib/python*/site-packages"))
    here = [str(Path(statetrace_guard.__file__).resolve().parent.parent)]
    here += [p for p in sys.path if p.endswith("site-packages")]  # its dependencies
    (site / "guard-under-test.pth").write_text("\n".join(here) + "\n")
    return root


def plant(workspace: Path, venv: Path, level: str) -> subprocess.CompletedProcess:
    site = next(venv.glob("lib/python*/site-packages"))
    targets = [site / "evil.pth", venv / "bin" / "python3-config", venv / "pyvenv.cfg"]
    argv = [str(venv / "bin" / "python"), "-m", "statetrace_guard", "run"]
    argv += ["--level", level, "--policy", ISOLATION_POLICY, "--"]
    argv += [*py(PLANT), *map(str, targets)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        argv,
        cwd=workspace,
        env={**env, "PATH": VENV_PATH},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_a_program_cannot_change_guards_own_environment(workspace, venv, level):
    before = (venv / "pyvenv.cfg").read_bytes()
    result = plant(workspace, venv, level)
    assert result.returncode == 0, result.stderr
    assert "wrote" not in result.stdout
    assert result.stdout.count("Read-only file system") == 3
    assert not next(venv.glob("lib/python*/site-packages/evil.pth"), None)
    assert (venv / "pyvenv.cfg").read_bytes() == before


def test_l3_may_install_into_it(workspace, venv):
    """Installing is what L3 is for (guard in a dedicated environment avoids this)."""
    result = plant(workspace, venv, "L3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("wrote") == 3
