"""The host's /dev/pts and /dev/shm are out of the program's reach (red team).

Found by the hardening review: every process of the machine shares them, and
root inside (no capabilities, but the owner of the operator's terminals and of
root's shared memory) opened another terminal's ``/dev/pts/N`` and read what
the operator typed there (from L0), and read and wrote other processes' POSIX
shared memory in ``/dev/shm`` (from L1). The program now gets its own devpts
instance and its own tmpfs at ``/dev/shm``. Each attack runs for real
through ``guard run``, on both paths.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import EDGES, assert_via, attack, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
    pytest.mark.skipif(os.geteuid() != 0, reason="private devices need root"),
]
run_path = isolation_kit.run_path

STEAL = """
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    print("stole", os.read(fd, 100))
except OSError as error:
    print("refused", error.strerror)
"""

SHARED = """
import os, sys
for mode in ("rb", "ab"):
    try:
        with open(sys.argv[1], mode) as handle:
            print(mode, handle.read() if mode == "rb" else handle.write(b"X"))
    except OSError as error:
        print(mode, "refused", error.strerror)
"""

OWN = """
import multiprocessing, os, sys
master, slave = os.openpty()
os.write(master, b"ok\\n")
print("pty", os.read(slave, 3))
multiprocessing.Lock()
with open("/dev/shm/" + sys.argv[1], "w") as handle:
    handle.write("1")
print("shm", os.listdir("/dev/shm"))
"""


@pytest.mark.parametrize("level", EDGES)
def test_another_terminals_input_cannot_be_read(workspace, run_path, level):
    """The operator's other terminal keeps what was typed into it."""
    master, slave = os.openpty()
    try:
        os.write(master, b"typed-password\n")
        result = attack(workspace, [*py(STEAL), os.ttyname(slave)], level=level)
        assert result.returncode == 0, result.stderr
        assert "stole" not in result.stdout
        assert "refused No such file or directory" in result.stdout
        assert os.read(slave, 100) == b"typed-password\n"  # still there for its shell
    finally:
        os.close(master)
        os.close(slave)
    assert_via(workspace, run_path)


@pytest.mark.parametrize("level", ["L1", "L3"])
def test_other_processes_shared_memory_is_out_of_sight(workspace, run_path, level):
    segment = Path(f"/dev/shm/guard-test-{uuid.uuid4().hex}")
    segment.write_bytes(b"host secret")
    try:
        result = attack(workspace, [*py(SHARED), str(segment)], level=level)
        assert result.returncode == 0, result.stderr
        assert "host secret" not in result.stdout
        assert "rb refused No such file or directory" in result.stdout
        assert segment.read_bytes() == b"host secret"
    finally:
        segment.unlink()
    assert_via(workspace, run_path)


def test_the_program_keeps_its_own_ptys_and_shared_memory(workspace):
    """New ptys, semaphores and /dev/shm files work, in the program's own instances."""
    name = f"guard-test-{uuid.uuid4().hex}"
    result = attack(workspace, [*py(OWN), name], level="L1")
    assert result.returncode == 0, result.stderr
    assert "pty b'ok\\n'" in result.stdout
    assert f"shm ['{name}']" in result.stdout
    assert not Path("/dev/shm", name).exists()
