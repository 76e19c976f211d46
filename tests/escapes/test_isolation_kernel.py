"""K5 (seccomp side), K15, K16 and the capability check, through ``guard run``.

* K5: ``open_by_handle_at`` reached any file of a writable mount by handle;
* K15: ``sethostname`` changed the machine's name;
* K16: a program removed the host's SysV shared-memory segment;
* no capability is left inside at any level (CapEff and every other set 0).
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys

import isolation_kit
import pytest
from isolation_kit import EDGES, LEVELS, assert_via, attack, last, py

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux kernel isolation"),
]
run_path = isolation_kit.run_path
_MAX_HANDLE_SZ = 128


def file_handle(path: str) -> tuple[int, bytes]:
    """``name_to_handle_at`` from here (outside): (handle type, handle bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(8 + _MAX_HANDLE_SZ)
    ctypes.c_uint.from_buffer(buffer, 0).value = _MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, path.encode(), buffer, ctypes.byref(mount_id), 0):
        pytest.fail(f"name_to_handle_at: {os.strerror(ctypes.get_errno())}")
    size = ctypes.c_uint.from_buffer(buffer, 0).value
    kind = ctypes.c_int.from_buffer(buffer, 4).value
    return kind, buffer.raw[8 : 8 + size]


BY_HANDLE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
kind, raw, mount = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3]
handle = ctypes.create_string_buffer(8 + len(raw))
ctypes.c_uint.from_buffer(handle, 0).value = len(raw)
ctypes.c_int.from_buffer(handle, 4).value = kind
ctypes.memmove(ctypes.addressof(handle) + 8, raw, len(raw))
mount_fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
fd = libc.open_by_handle_at(mount_fd, handle, os.O_WRONLY | os.O_APPEND)
if fd < 0:
    print("open_by_handle_at", ctypes.get_errno())
    out = ctypes.create_string_buffer(8 + 128)
    ctypes.c_uint.from_buffer(out, 0).value = 128
    mid = ctypes.c_int()
    rc = libc.name_to_handle_at(-100, mount.encode(), out, ctypes.byref(mid), 0)
    print("name_to_handle_at", ctypes.get_errno() if rc else 0)
    sys.exit(3)
os.write(fd, b"appended by handle\\n")
"""


class TestFileHandles:
    @pytest.mark.parametrize("level", ["L1", "L3"])
    def test_rejects_open_by_handle_at_on_a_protected_file(
        self, run_path, workspace, tmp_path, level
    ):
        """K5: a handle for a file outside the grants opens nothing; EPERM."""
        target = tmp_path / "outside.txt"
        target.write_text("original\n")
        kind, raw = file_handle(str(target))
        result = attack(
            workspace,
            [*py(BY_HANDLE), str(kind), raw.hex(), str(workspace)],
            level=level,
        )
        assert result.returncode == 3, result.stderr
        assert "open_by_handle_at 1" in result.stdout
        assert "name_to_handle_at 1" in result.stdout
        assert target.read_text() == "original\n"
        assert_via(workspace, run_path)


class TestHostname:
    @pytest.mark.parametrize("level", EDGES)
    def test_rejects_sethostname(self, run_path, workspace, level):
        """K15: the host keeps its name (own UTS namespace, no CAP_SYS_ADMIN)."""
        before = socket.gethostname()
        code = (
            "import socket, sys\n"
            "try:\n"
            "    socket.sethostname('pwned-by-agent')\n"
            "except OSError as exc:\n"
            "    print('refused', exc.errno); sys.exit(3)\n"
        )
        result = attack(workspace, py(code), level=level)
        assert result.returncode == 3, result.stderr
        assert "refused 1" in result.stdout
        assert socket.gethostname() == before
        result = attack(workspace, ["hostname", "pwned-by-agent"], level=level)
        assert result.returncode != 0
        assert socket.gethostname() == before
        assert_via(workspace, run_path)


@pytest.fixture
def host_segment():
    """A SysV shared-memory segment of the host's, owned by root like the guard."""
    out = subprocess.run(
        ["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True
    ).stdout
    shmid = int(out.strip().split()[-1])
    yield shmid
    subprocess.run(["ipcrm", "-m", str(shmid)], check=False, capture_output=True)


def segment_exists(shmid: int) -> bool:
    listing = subprocess.run(
        ["ipcs", "-m"], capture_output=True, text=True, check=True
    ).stdout
    return any(line.split()[1:2] == [str(shmid)] for line in listing.splitlines())


class TestSysvIpc:
    @pytest.mark.parametrize("level", EDGES)
    def test_rejects_removing_the_hosts_segment(
        self, run_path, workspace, host_segment, level
    ):
        """K16: the program's IPC namespace has no such segment; the host keeps it."""
        code = (
            "import ctypes, sys\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "rc = libc.shmctl(int(sys.argv[1]), 0, None)\n"  # IPC_RMID
            "print('shmctl', rc, ctypes.get_errno()); sys.exit(0 if rc == 0 else 3)\n"
        )
        result = attack(workspace, [*py(code), str(host_segment)], level=level)
        assert result.returncode == 3, result.stderr
        result = attack(workspace, ["ipcrm", "-m", str(host_segment)], level=level)
        assert result.returncode != 0
        assert segment_exists(host_segment)
        assert_via(workspace, run_path)


STATUS = """
fields = {}
for line in open("/proc/self/status"):
    name, _, value = line.partition(":")
    fields[name] = value.strip()
print(" ".join(f"{k}={fields[k]}" for k in (
    "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")))
"""


class TestCapabilities:
    @pytest.mark.parametrize("level", LEVELS)
    def test_no_capability_inside_at_any_level(self, run_path, workspace, level):
        """CapEff (and every other set) is 0; no_new_privs and a filter are on."""
        result = attack(workspace, py(STATUS), level=level)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [
            "CapInh=0000000000000000",
            "CapPrm=0000000000000000",
            "CapEff=0000000000000000",
            "CapBnd=0000000000000000",
            "CapAmb=0000000000000000",
            "NoNewPrivs=1",
            "Seccomp=2",
        ]
        enforcement = last(workspace, "command.started")["enforcement"]
        assert enforcement["capabilities"] == "none"
        assert enforcement["namespaces"] == "pid,ipc,uts"
        assert enforcement["seccomp"] == os.uname().machine
        assert_via(workspace, run_path)

    def test_a_setuid_binary_gives_nothing_back(self, workspace):
        """no_new_privs and the locked secure bits: exec of su/passwd gains nothing."""
        code = (
            "import subprocess, sys\n"
            "out = subprocess.run(['sh', '-c', 'grep CapEff /proc/self/status'],"
            " capture_output=True, text=True).stdout\n"
            "print(out.strip())\n"
        )
        result = attack(workspace, py(code), level="L3")
        assert result.stdout.strip() == "CapEff:\t0000000000000000"
