"""K9: every workspace's guard-owned files are protected, not only the current one's.

Another workspace's session log under the system temp directory (writable at
L1) was truncated from this workspace. guard's home now keeps the log
directories it has written, and their guard subdirectories are read-only for
every command (and never writable for the classifier).
"""

from __future__ import annotations

import sys

import pytest

from statetrace_guard.audit.verify import verify_file

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel layer")


@pytest.fixture
def other(tmp_path, guard):
    """Another workspace under the temp dir with a session log of its own."""
    root = tmp_path / "other"
    (root / ".git").mkdir(parents=True)
    assert guard("run", "--", "true", cwd=root).returncode == 0
    logs = sorted((root / "Logs" / "Sessions").glob("*.jsonl"))
    assert len(logs) == 1
    return logs[0]


class TestOtherWorkspaces:
    def test_rejects_truncating_another_workspaces_log(self, other, attack):
        """From this workspace at L1, another workspace's session log stays intact."""
        before = other.read_bytes()
        code = (
            "import sys\n"
            f"for mode in ('r+', 'a', 'w'):\n"
            "    try:\n"
            f"        open({str(other)!r}, mode).truncate(0)\n"
            "        sys.exit(1)\n"
            "    except OSError:\n"
            "        pass\n"
        )
        result = attack(code)
        assert result.returncode == 0, result.stderr
        assert other.read_bytes() == before
        assert verify_file(other).ok

    @pytest.mark.parametrize("move", ["Logs", "Logs/Sessions"])
    def test_rejects_moving_another_workspaces_logs_away(self, other, attack, move):
        """Its Logs cannot be renamed away (pinned) or replaced."""
        root = other.parent.parent.parent
        code = (
            "import os, sys\n"
            "try:\n"
            f"    os.rename({str(root / move)!r}, {str(root / 'gone')!r})\n"
            "except OSError:\n"
            "    sys.exit(13)\n"
        )
        assert attack(code).returncode == 13
        assert other.exists()

    def test_classifier_refuses_writes_to_another_workspaces_log(self, other, guard):
        """The classifier knows the other log too: blocked before anything runs."""
        result = guard("run", "--level", "L3", "--", "truncate", "-s", "0", str(other))
        assert result.returncode == 126
        assert b"(rule self-protect)" in result.stderr
