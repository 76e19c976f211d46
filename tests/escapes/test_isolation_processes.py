"""K10, K12, K13 and issue 14.5: other processes are out of reach; the tree dies.

* K10: ``prlimit --pid <supervisor> --nofile=0:0`` crashed the supervisor and
  a background process lived on with parent pid 1;
* K12: ``prlimit``/``renice`` of the unsandboxed helper;
* K13: ``/proc/<pid>/environ`` of processes outside (an agent's API keys);
* 14.5: a killed supervisor, or a killed ``guard run``, left the program's
  background processes running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import (
    VENV_PATH,
    assert_via,
    attack,
    find_program,
    guard_args,
    last,
    parent_of,
    ping,
    processes_with,
    py,
)

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux kernel isolation"),
]
run_path = isolation_kit.run_path

ON_OTHERS = """
import os, resource, subprocess, sys, time
marker = sys.argv[1]
subprocess.Popen(["sleep", "300", marker])          # left behind on purpose
targets = sys.argv[2]
deadline = time.monotonic() + 60
while not os.path.exists(targets) and time.monotonic() < deadline:
    time.sleep(0.05)
for pid in [1, *map(int, open(targets).read().split())]:
    for name, attempt in (
        ("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (0, 0))),
        ("renice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
        ("prlimit(1)", lambda: subprocess.run(
            ["prlimit", "--pid", str(pid), "--nofile=0:0"], check=True,
            stderr=subprocess.DEVNULL)),
        ("kill", lambda: os.kill(pid, 9)),
    ):
        try:
            attempt()
            print(name, pid, "DONE", flush=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(name, pid, "refused", getattr(exc, "errno", exc), flush=True)
"""


def limits_and_nice(pid: int) -> tuple[str, bytes]:
    with open(f"/proc/{pid}/limits") as handle:
        limits = handle.read()
    with open(f"/proc/{pid}/stat", "rb") as handle:
        nice = handle.read().rpartition(b")")[2].split()[16]
    return limits, nice


class TestOtherProcesses:
    def test_rejects_limits_priority_and_signals_on_outside_processes(
        self, run_path, workspace, tmp_path
    ):
        """K10/K12: the supervisor, the client and the helper keep their limits."""
        marker = f"{time.time_ns()}.5"
        targets = workspace / "targets"
        proc = subprocess.Popen(
            guard_args("L0", [*py(ON_OTHERS), marker, str(targets)]),
            cwd=workspace,
            env={**os.environ, "PATH": VENV_PATH},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        program = find_program(marker)
        supervisor = parent_of(parent_of(program))
        lasting = {os.getpid()}  # still here after the run, unlike the client
        helper = ping()
        if helper is not None:
            lasting.add(helper)
        before = {pid: limits_and_nice(pid) for pid in lasting}
        outside = sorted({proc.pid, supervisor, *lasting})
        (tmp_path / "targets").write_text(" ".join(map(str, outside)))
        os.replace(tmp_path / "targets", targets)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        assert "DONE" not in out.replace("kill 1 DONE", "")  # init ignores it
        assert out.count("refused") >= 4 * len(outside)
        assert {pid: limits_and_nice(pid) for pid in lasting} == before
        finished = last(workspace, "command.finished")
        assert finished["exit_code"] == 0
        assert any("sleep" in entry["name"] for entry in finished["leftover"])
        assert processes_with(marker) == []  # nothing survived the run
        assert_via(workspace, run_path)


SECRET = "sk-test-" + "9" * 24

READ_ENVIRON = """
import os, sys
secret, pid = sys.argv[1], sys.argv[2]
try:
    open(f"/proc/{pid}/environ", "rb").read()
    print("read it")
except OSError as exc:
    print("refused", exc.errno)
found = []
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            if secret.encode() in open(f"/proc/{name}/environ", "rb").read():
                found.append(name)
        except OSError:
            pass
print("found", found)
print("visible", sorted(int(n) for n in os.listdir("/proc") if n.isdigit()))
"""


class TestEnvironments:
    def test_rejects_reading_outside_environments(self, run_path, workspace):
        """K13: a fresh /proc shows only the program's own PID namespace."""
        holder = subprocess.Popen(
            ["sleep", "120"], env={"PATH": "/usr/bin:/bin", "API_KEY": SECRET}
        )
        try:
            result = attack(workspace, [*py(READ_ENVIRON), SECRET, str(holder.pid)])
            assert result.returncode == 0, result.stderr
            assert "read it" not in result.stdout
            assert "found []" in result.stdout
            visible = result.stdout.split("visible [")[1].split("]")[0].split(", ")
            assert "1" in visible
            assert len(visible) < 10  # init, the program, ls: its own namespace
        finally:
            holder.kill()
            holder.wait()
        assert_via(workspace, run_path)


ORPHAN = "(sleep 4; echo survived > orphan) & wait"


def sandboxed_shell(script: str, timeout: float = 30.0) -> int:
    """The outer pid of the guarded ``sh -c SCRIPT`` (not the client's argv)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in processes_with(script):
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read().split(b"\0")[0] == b"sh":
                    return pid
        time.sleep(0.05)
    raise AssertionError("the guarded shell did not start")


def never_appears(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return False
        time.sleep(0.1)
    return not path.exists()


class TestTreeDiesWithItsSupervisor:
    def test_a_killed_supervisor_ends_the_background_too(self, run_path, workspace):
        """14.5: SIGKILL the supervisor (helper path) or ``guard run`` itself."""
        proc = subprocess.Popen(
            guard_args("L1", ["sh", "-c", ORPHAN]),
            cwd=workspace,
            env={**os.environ, "PATH": VENV_PATH},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shell = sandboxed_shell(ORPHAN)
        supervisor = parent_of(parent_of(shell))
        if run_path == "in-process":
            assert supervisor == proc.pid  # guard run supervises it itself
        else:
            assert supervisor != proc.pid
        os.kill(supervisor, signal.SIGKILL)
        proc.wait(timeout=60)
        assert never_appears(workspace / "orphan", 6.0)
        assert processes_with(ORPHAN) == []

    def test_a_killed_client_with_a_terminal_ends_its_tree(self, workspace):
        """The in-process path when stdin is a terminal: the client is the supervisor."""
        master, slave = os.openpty()
        proc = subprocess.Popen(
            guard_args("L1", ["sh", "-c", ORPHAN]),
            cwd=workspace,
            env={**os.environ, "PATH": VENV_PATH},
            stdin=slave,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(slave)
        try:
            shell = sandboxed_shell(ORPHAN)
            assert parent_of(parent_of(shell)) == proc.pid
            proc.kill()
            proc.wait(timeout=60)
            assert never_appears(workspace / "orphan", 6.0)
        finally:
            os.close(master)
