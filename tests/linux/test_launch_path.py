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


def test_a_supervised_run_loads_no_module_after_the_launcher_fork(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 0, result["error"]
    assert "pid" in result["pid_namespace"]
    assert result["loaded"] == []
