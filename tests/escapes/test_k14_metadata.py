"""K14: metadata outside the grants (chmod, chown, utime, xattr) is refused.

Landlock does not cover metadata; the program's read-only view does.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel layer")

TOUCH_OUTSIDE = """
import os, sys
target = sys.argv[1] if len(sys.argv) > 1 else {target!r}
failures = 0
for step in (
    lambda: os.chmod(target, 0o600),
    lambda: os.chown(target, 1, 1),
    lambda: os.utime(target, (0, 0)),
    lambda: os.setxattr(target, "user.guard", b"x"),
):
    try:
        step()
    except OSError:
        failures += 1
sys.exit(0 if failures == 4 else 1)
"""


@pytest.fixture
def outside_file():
    """A file the operator owns outside the workspace and every temp dir."""
    root = Path.home() / ".cache" / "statetrace-guard-tests" / uuid.uuid4().hex
    root.mkdir(parents=True)
    target = root / "file"
    target.write_text("x")
    target.chmod(0o644)
    yield target
    shutil.rmtree(root)


class TestMetadataOutsideGrants:
    # L0 runs no python under the test policy; tests/linux checks L0 directly.
    @pytest.mark.parametrize("level", ["L1", "L2", "L3"])
    def test_rejects_metadata_changes_outside(self, attack, outside_file, level):
        """chmod, chown, utime and setxattr all fail on a file outside the grants."""
        before = os.stat(outside_file)
        result = attack(TOUCH_OUTSIDE.format(target=str(outside_file)), level=level)
        assert result.returncode == 0, result.stderr
        after = os.stat(outside_file)
        assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == (
            before.st_mode,
            before.st_uid,
            before.st_gid,
            before.st_mtime_ns,
        )
        assert "user.guard" not in os.listxattr(outside_file)

    def test_metadata_inside_workspace_still_works(self, attack, workspace):
        """Inside the grants chmod and utime work as before."""
        target = workspace / "script.sh"
        target.write_text("echo\n")
        code = (
            f"import os; os.chmod({str(target)!r}, 0o755); "
            f"os.utime({str(target)!r}, (0, 0))"
        )
        assert attack(code).returncode == 0
        assert os.stat(target).st_mode & 0o777 == 0o755
        assert os.stat(target).st_mtime == 0
