"""K5 (mount side): no file handle reaches guard's files through a writable mount.

``open_by_handle_at`` opens an inode by handle on whatever mount the caller
names: through the writable workspace mount it bypasses the read-only bind
over ``Logs/Sessions`` (and Landlock, which sees a path under the workspace).
Only the isolation layer closes it (no CAP_DAC_READ_SEARCH / CAP_SYS_ADMIN,
and seccomp refusing both handle calls); this test runs the attack through
the workspace's own mount and asserts that the log and ``.git/config`` stay
as they were.
"""

from __future__ import annotations

import sys

import pytest
from escapes_kit import ESCAPES_POLICY, git

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel layer")

HANDLE_ATTACK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint), ("type", ctypes.c_int),
                ("f", ctypes.c_ubyte * 128)]
wrote = 0
for target in sys.argv[1:]:
    handle = Handle(128, 0)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, target.encode(), ctypes.byref(handle), ctypes.byref(mount_id), 0) != 0:
        continue
    workspace = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    fd = libc.open_by_handle_at(workspace, ctypes.byref(handle), os.O_WRONLY | os.O_APPEND)
    if fd < 0:
        continue
    try:
        os.write(fd, b"# planted through a handle\n")
        wrote += 1
    except OSError:
        pass
sys.exit(wrote)
"""


def test_rejects_handles_to_guard_files_through_the_workspace_mount(repo, guard):
    """A program at L1 cannot append to the session log or .git/config by handle."""
    assert guard("run", "--", "true").returncode == 0
    log = next((repo / "Logs" / "Sessions").glob("*.jsonl"))
    config = repo / ".git" / "config"
    before = (log.read_bytes(), config.read_bytes())
    result = guard(
        "run",
        "--level",
        "L1",
        "--policy",
        ESCAPES_POLICY,
        "--",
        "python3",
        "-c",
        # The targets are in the code, not the arguments: named as arguments,
        # guard's files block the command up front (protected-argument) and
        # the kernel layer under test would never be reached.
        HANDLE_ATTACK.replace("sys.argv[1:]", repr([str(log), str(config)])),
    )
    assert result.returncode == 0, result.stderr  # 0 files written by handle
    assert log.read_bytes().startswith(before[0])
    assert b"planted" not in log.read_bytes()
    assert config.read_bytes() == before[1]
    assert git(repo, "status").returncode == 0
