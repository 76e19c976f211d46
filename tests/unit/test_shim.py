"""guard-sh's arguments: `sh -c` forms mapped onto `guard run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from statetrace_guard.shim import ShimUsageError, run_argv


class TestRunArgv:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["-c", "ls"], ["--", "bash", "-c", "ls"]),
            (["-lc", "ls"], ["--", "bash", "-l", "-c", "ls"]),
            (["-e", "-c", "ls", "n", "a"], ["--", "bash", "-e", "-c", "ls", "n", "a"]),
            (
                ["-o", "pipefail", "-c", "ls"],
                ["--", "bash", "-o", "pipefail", "-c", "ls"],
            ),
            (
                ["--level", "L0", "--policy=p.toml", "--durable", "-c", "ls"],
                [
                    "--level",
                    "L0",
                    "--policy=p.toml",
                    "--durable",
                    "--",
                    "bash",
                    "-c",
                    "ls",
                ],
            ),
            (["-c", "-x"], ["--", "bash", "-c", "-x"]),
        ],
    )
    def test_accepts_sh_forms(self, args, expected):
        """Long options are guard run's; short flags the shell's."""
        assert run_argv(args, "bash") == expected

    @pytest.mark.parametrize(
        "args", [[], ["-l"], ["-c"], ["script.sh"], ["-", "-c", "x"]]
    )
    def test_rejects_other_forms(self, args):
        """No -c SCRIPT: a usage error (exit 2 from the script)."""
        with pytest.raises(ShimUsageError):
            run_argv(args, "sh")


@pytest.mark.usefixtures("workspace")
def test_usage_error_exits_2():
    """The console script: one message, exit 2, nothing run."""
    shim = Path(sys.executable).parent / "guard-sh"
    result = subprocess.run([str(shim), "script.sh"], capture_output=True, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(b"guard-sh: ")
