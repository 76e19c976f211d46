"""The helper's launch path stays lean: what a supervisor needs is loaded before the fork.

The launcher forks a supervisor per command; a module the supervisor (or the
init and program it forks) imports after that fork is imported again for
every command (~2 ms for the PID namespace's init module alone). Not a
timing assertion: the test looks at what a run loads, in a fresh interpreter
holding exactly what the launcher holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from statetrace_guard.daemon.launcher import SPARE_NAME
from statetrace_guard.sandbox.linux import LinuxBackend

CAPS = LinuxBackend().probe() if sys.platform.startswith("linux") else None
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        CAPS is None or not CAPS.pidns or CAPS.landlock_abi < 1,
        reason="needs Landlock and PID namespaces",
    ),
]

# The launcher's imports, the plan as it arrives over the wire, the launcher's
# keep_prepared; then one supervised run in this process (the supervisor's
# part of it): every module it loads would be loaded per command.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys, tempfile
    import statetrace_guard.daemon.launcher
    from statetrace_guard.daemon.wire import backend_from_wire, plan_from_wire, plan_to_wire
    from statetrace_guard.levels import Level
    from statetrace_guard.runner import RunSpec, run
    from statetrace_guard.sandbox.base import FsLayout, make_private_tmp, remove_private_tmp
    from statetrace_guard.sandbox.linux import LinuxBackend

    tmp = tempfile.mkdtemp()
    workspace = os.path.join(tmp, "ws")
    os.mkdir(workspace)
    private = make_private_tmp(tmp)
    native = LinuxBackend()
    wire = plan_to_wire(
        native.plan(Level.L1, network_open=False, layout=FsLayout(workspace, private, tmp, ())),
        native,
    )
    plan, backend = plan_from_wire(wire), backend_from_wire(wire)
    backend.keep_prepared(plan)
    before = set(sys.modules)
    outcome = run(RunSpec(["/bin/true"], workspace, dict(os.environ), plan=plan, backend=backend))
    remove_private_tmp(private)
    print(json.dumps({
        "status": outcome.exit_status,
        "error": outcome.error,
        "pid_namespace": plan.seal.namespaces,
        "loaded": sorted(set(sys.modules) - before),
    }))
    """
)


def _run_script(tmp_path, script, *args):
    """Run ``script`` in a fresh interpreter; the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_supervised_run_loads_no_module_after_the_launcher_fork(tmp_path):
    result = _run_script(tmp_path, SCRIPT)
    assert result["status"] == 0, result["error"]
    assert "pid" in result["pid_namespace"]
    assert result["loaded"] == []


# A waiting supervisor (the launcher's spare, with a prepared mount namespace
# reserved for its program, as the launcher forks it) driven as the helper and
# the client drive it: an "expect" with the plan, then a launch, then the go.
SPARE = textwrap.dedent(
    """
    import json, os, socket, sys, tempfile, time
    from statetrace_guard.daemon import launcher
    from statetrace_guard.daemon.protocol import recv_message, send_message
    from statetrace_guard.daemon.wire import backend_from_wire, plan_from_wire, plan_to_wire
    from statetrace_guard.levels import Level
    from statetrace_guard.sandbox.base import FsLayout, make_private_tmp
    from statetrace_guard.sandbox.linux import LinuxBackend
    from statetrace_guard.sandbox.mounts import make_mount_namespace

    expect_id, launch_id = int(sys.argv[1]), int(sys.argv[2])
    tmp = tempfile.mkdtemp()
    workspace = os.path.join(tmp, "ws")
    os.mkdir(workspace)
    native = LinuxBackend()

    def wire_for(private):
        layout = FsLayout(workspace, private, tmp, ())
        return plan_to_wire(native.plan(Level.L1, network_open=False, layout=layout), native)

    first_tmp, own_tmp = make_private_tmp(tmp), make_private_tmp(tmp)
    expect_wire = wire_for(first_tmp)
    launch_wire = expect_wire if expect_id == launch_id else wire_for(own_tmp)
    program_tmp = first_tmp if expect_id == launch_id else own_tmp
    plan = plan_from_wire(expect_wire)
    expected = launcher._Expected(launcher._init_wanted(plan), plan, backend_from_wire(expect_wire))
    channel, channel_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mounts = make_mount_namespace()
    spare = os.fork()
    if spare == 0:
        channel.close(); ours.close()
        launcher._reserve(None, mounts)
        os._exit(launcher._await_launch(channel_theirs, theirs, expected))
    channel_theirs.close(); theirs.close(); os.close(mounts)
    launcher.send_packet(ours, {"op": "expect", "id": expect_id, "plan": expect_wire})
    # The program's init builds its view from the expect, before any launch.
    mine, deadline, init = os.readlink("/proc/self/ns/mnt"), time.monotonic() + 10, None
    while init is None and time.monotonic() < deadline:
        with open(f"/proc/{spare}/task/{spare}/children") as handle:
            children = handle.read().split()
        for pid in children:
            try:
                if os.readlink(f"/proc/{pid}/ns/mnt") != mine:
                    init = pid
            except OSError:
                pass
        time.sleep(0.005)
    built, waiting_name = init is not None, None
    while built and time.monotonic() < deadline:
        with open(f"/proc/{init}/status") as handle:
            if "Seccomp:\t2" in handle.read():  # sealed: it waits for the launch
                with open(f"/proc/{init}/comm") as comm:
                    waiting_name = comm.read().strip()
                break
        time.sleep(0.005)
    client, conn = socket.socketpair()
    out_r, out_w = os.pipe()
    spec = {
        "argv": ["sh", "-c", f"test -d {program_tmp} && echo ran"],
        "cwd": workspace, "env": {"PATH": os.environ["PATH"]}, "timeout": None,
        "grace": 1.0, "max_memory": None, "max_processes": None,
        "allow_background": False, "watch_tests": None,
    }
    launch = {"op": "launch", "id": launch_id, "spec": spec, "plan": launch_wire,
              "fds": [1], "umask": None, "warnings": []}
    launcher.send_packet(ours, launch, (conn.fileno(),))
    conn.close()
    assert recv_message(client)["op"] == "running"
    send_message(client, {"op": "go"}, (out_w,))
    os.close(out_w)
    outcome = recv_message(client)["outcome"]
    printed = os.read(out_r, 100).decode()
    os.waitpid(spare, 0)
    print(json.dumps({"built_before_launch": built, "waiting_name": waiting_name,
                      "outcome": outcome, "printed": printed}))
    """
)


def _drive_spare(tmp_path, expect_id, launch_id):
    return _run_script(tmp_path, SPARE, str(expect_id), str(launch_id))


@pytest.mark.skipif(not (CAPS and CAPS.root), reason="init is forked ahead as root")
def test_init_builds_the_view_from_the_expect_before_the_launch(tmp_path):
    result = _drive_spare(tmp_path, expect_id=7, launch_id=7)
    assert result["built_before_launch"]
    # Until its launch comes it is a spare, and says so in ps.
    assert result["waiting_name"] == SPARE_NAME.decode()
    assert result["outcome"]["exit_status"] == 0, result["outcome"]
    assert result["printed"] == "ran\n"


@pytest.mark.skipif(not (CAPS and CAPS.root), reason="init is forked ahead as root")
def test_a_launch_other_than_the_expected_one_gets_a_fresh_init(tmp_path):
    """Init built for command 7 is discarded; command 8 runs in a view of its own.

    The prepared mount namespace went to the discarded init (with command 7's
    private directory on top): command 8's own private directory must be
    there for it, not hidden (the helper's commands run concurrently).
    """
    result = _drive_spare(tmp_path, expect_id=7, launch_id=8)
    assert result["built_before_launch"]
    assert result["waiting_name"] == SPARE_NAME.decode()
    assert result["outcome"]["exit_status"] == 0, result["outcome"]
    assert result["printed"] == "ran\n"
