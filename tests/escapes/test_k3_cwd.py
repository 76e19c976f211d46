"""K3: a working directory inside a protected directory stays read-only.

``runner`` once entered the directory before the read-only binds existed, so
``cd .git/hooks && guard run -- pytest`` (a test writing ``pre-commit``
relative to its cwd) planted a hook the operator's next ``git commit`` ran.
"""

from __future__ import annotations

import sys

import pytest
from escapes_kit import git

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel layer")

WRITE_HERE = """
import os, sys
try:
    with open("pre-commit", "w") as handle:
        handle.write("#!/bin/sh\\ntouch planted\\n")
    os.chmod("pre-commit", 0o755)
except OSError as exc:
    print(exc, file=sys.stderr)
    sys.exit(13)
"""


class TestCwdInsideProtected:
    def test_rejects_hook_written_from_inside_hooks(self, repo, attack):
        """From .git/hooks at L1 the program cannot write a hook; git runs none."""
        hooks = repo / ".git" / "hooks"
        before = sorted(p.name for p in hooks.iterdir())
        result = attack(WRITE_HERE, cwd=hooks)
        assert result.returncode == 13, result.stderr
        assert b"Read-only file system" in result.stderr
        assert sorted(p.name for p in hooks.iterdir()) == before
        (repo / "f").write_text("x")
        git(repo, "add", "f")
        assert git(repo, "commit", "-qm", "f").returncode == 0
        assert not (repo / "planted").exists()

    @pytest.mark.parametrize("sub", ["Sessions", "NetOps", "Approvals"])
    def test_rejects_writes_from_inside_guard_logs(self, repo, attack, guard, sub):
        """From Logs/<sub> at every level the program cannot write there."""
        guard("run", "--", "true")  # creates the log directories and a session
        where = repo / "Logs" / sub
        before = {p.name: p.read_bytes() for p in where.iterdir()}
        code = (
            "import os, sys\n"
            "for name in os.listdir('.') + ['new.jsonl']:\n"
            "    try:\n"
            "        open(name, 'a').write('x')\n"
            "        sys.exit(1)\n"
            "    except OSError:\n"
            "        pass\n"
        )
        for level in ("L1", "L2", "L3"):
            result = attack(code, level=level, cwd=where)
            if level == "L1":
                assert result.returncode == 0, result.stderr
        after = {p.name: p.read_bytes() for p in where.iterdir()}
        # Only the guard itself appended to its session log.
        assert set(after) == set(before) or sub == "Sessions"
        for name, content in before.items():
            assert after[name].startswith(content)
        assert "new.jsonl" not in after
