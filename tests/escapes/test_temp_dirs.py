"""The classifier and the kernel agree on the temporary directories (one list).

Before: the classifier let L1 write /var/tmp, the kernel granted only the
system temporary directory and /dev/shm (a write there failed with EROFS);
with TMPDIR elsewhere, /tmp was allowed by one and refused by the other.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from isolation_kit import attack, py

from statetrace_guard.evaluate import make_place
from statetrace_guard.layout import fs_layout
from statetrace_guard.levels import Level
from statetrace_guard.paths import temp_dirs
from statetrace_guard.protect import compile_protect

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux kernel grants"),
]

WRITE = """
import sys
for path in sys.argv[1:]:
    try:
        open(path, "w").close()
        print("wrote", path)
    except OSError as error:
        print("refused", path, error.strerror)
"""


def test_one_list_for_both_sides(workspace, tmp_path):
    """The classifier's temp rooms are exactly the kernel's (those that exist)."""
    place = make_place(workspace, workspace, workspace / "Logs", None, os.environ)
    layout = fs_layout(
        level=Level.L1,
        workspace=str(workspace),
        log_dir=str(workspace / "Logs"),
        private_tmp=str(tmp_path),
        guard_owned=(),
        patterns=compile_protect(()),
        create=False,
    )
    assert place.decide.temp_dirs == temp_dirs()
    assert set(layout.temp_dirs) == {p for p in temp_dirs() if Path(p).is_dir()}
    assert {"/tmp", "/var/tmp", "/dev/shm"} <= set(temp_dirs())


@pytest.mark.parametrize("level", ["L0", "L1"])
def test_every_temp_dir_is_writable_from_l1_only(workspace, guard, level):
    """What `guard check` allows at L1 the kernel grants; L0 writes none of them."""
    rooms = [p for p in temp_dirs() if Path(p).is_dir()]
    targets = [f"{room}/guard-temp-{uuid.uuid4().hex}" for room in rooms]
    try:
        checked = guard("check", "--level", "L1", "--", "touch", *targets)
        assert checked.returncode == 0, checked.stdout
        result = attack(workspace, [*py(WRITE), *targets], level=level)
        assert result.returncode == 0, result.stderr
        wrote = result.stdout.count("wrote ")
        assert wrote == (len(targets) if level == "L1" else 0), result.stdout
    finally:
        for target in targets:
            Path(target).unlink(missing_ok=True)
