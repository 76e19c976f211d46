"""The process events connector sees a test program's own status inside a pipeline."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from statetrace_guard.sandbox.procevents import TreeWatch, listen

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the process events connector needs root on Linux",
)


def _pick(argv):
    return "tester" if any(word.endswith("tester.py") for word in argv[:2]) else None


def _watch(tmp_path, script, code):
    tester = tmp_path / "tester.py"
    tester.write_text(f"import sys, time\ntime.sleep(0.2)\nsys.exit({code})\n")
    sock = listen()
    try:
        watch = TreeWatch(parent=os.getpid(), pick=_pick)
        proc = subprocess.Popen(
            ["bash", "-c", script.format(py=sys.executable, tester=tester)]
        )
        watch.root = proc.pid
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            select.select([sock], [], [], 0.05)
            watch.drain(sock)
        returncode = proc.wait(timeout=60)
        watch.drain(sock)
    finally:
        sock.close()
    return returncode, watch


@pytest.mark.parametrize(
    ("script", "code", "pipeline", "status"),
    [
        ("{py} {tester} | tail -1", 3, 0, 3),
        ("{py} {tester} | tail -1", 0, 0, 0),
        ("set -o pipefail; {py} {tester} | tail -1", 3, 3, 3),
        ("{py} {tester} || true", 1, 0, 1),
    ],
)
def test_own_status_behind_a_mask(tmp_path, script, code, pipeline, status):
    returncode, watch = _watch(tmp_path, script, code)
    assert returncode == pipeline
    assert watch.unobserved is None
    assert [(o.name, o.exit_code, o.signal) for o in watch.observed] == [
        ("tester", status, None)
    ]


def test_other_programs_are_not_kept(tmp_path):
    returncode, watch = _watch(tmp_path, "true | tail -1", 0)
    assert returncode == 0
    assert watch.observed == []


def test_a_root_never_forked_by_the_parent_is_unobserved():
    watch = TreeWatch(parent=os.getpid(), pick=_pick, root=1)
    assert watch.unobserved is not None
