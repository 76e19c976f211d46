"""The process events connector sees a test program's own status inside a pipeline.

Real processes: a small "tester" script exits with a chosen status behind
``| tail -1``, ``|| true`` and ``set -o pipefail``; the watch (alone, then
through the runner as ``guard run`` uses it) must report the tester's own
status, only the outermost tester, and say so when it cannot see.
"""

from __future__ import annotations

import errno
import os
import re
import select
import subprocess
import sys
import time

import pytest

from statetrace_guard.runner import RunSpec, run
from statetrace_guard.sandbox import procevents
from statetrace_guard.sandbox.procevents import TreeWatch, listen
from statetrace_guard.testpicker import PickRule, TestPicker

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the process events connector needs root on Linux",
)
PICKER = TestPicker(
    (PickRule("tester", frozenset(), script_pattern=re.compile(r"tester\.py$")),)
)


def make_tester(tmp_path, code, inner=""):
    """A test program that sleeps a little (so it is seen) and exits ``code``."""
    path = tmp_path / "tester.py"
    path.write_text(
        f"import subprocess, sys, time\n{inner}\ntime.sleep(0.2)\nsys.exit({code})\n"
    )
    return path


def watch(tmp_path, script, code):
    path = make_tester(tmp_path, code)
    sock = listen()
    try:
        tree = TreeWatch(parent=os.getpid(), pick=PICKER.pick)
        proc = subprocess.Popen(
            ["bash", "-c", script.format(py=sys.executable, tester=path)]
        )
        tree.root = proc.pid
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            select.select([sock], [], [], 0.05)
            tree.drain(sock)
        returncode = proc.wait(timeout=60)
        tree.drain(sock)
    finally:
        sock.close()
    return returncode, tree


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
    """The tester's own status is reported whatever the pipeline exits with."""
    returncode, tree = watch(tmp_path, script, code)
    assert returncode == pipeline
    assert tree.unobserved is None
    assert [(o.name, o.exit_code, o.signal) for o in tree.observed] == [
        ("tester.py", status, None)
    ]


def test_other_programs_are_not_kept(tmp_path):
    """Programs no rule picks leave nothing."""
    returncode, tree = watch(tmp_path, "true | tail -1", 0)
    assert returncode == 0
    assert tree.observed == []


def test_a_root_never_forked_by_the_parent_is_unobserved():
    """A tree whose first fork was never seen is not vouched for."""
    tree = TreeWatch(parent=os.getpid(), pick=PICKER.pick, root=1)
    assert tree.unobserved is not None
    assert tree.as_record()["unobserved"] == tree.unobserved


def spec(tmp_path, script, **kwargs):
    return RunSpec(
        ["bash", "-c", script],
        str(tmp_path),
        dict(os.environ),
        watch_tests=PICKER,
        **kwargs,
    )


class TestThroughTheRunner:
    def test_a_masked_failure_is_recorded(self, tmp_path):
        """`tester | tail -1`: exit 0, and the record has the tester's exit 3."""
        path = make_tester(tmp_path, 3)
        outcome = run(spec(tmp_path, f"{sys.executable} {path} | tail -1"))
        assert outcome.exit_status == 0
        assert outcome.as_record()["test_programs"] == {
            "runs": [{"program": "tester.py", "exit_code": 3, "signal": None}],
            "unread": 0,
            "unobserved": None,
        }

    def test_a_killed_tester_is_recorded_with_its_signal(self, tmp_path):
        """A tester ended by a signal is reported with it, not as exit 0."""
        path = make_tester(tmp_path, 0, "import os, signal; os.kill(os.getpid(), 15)")
        outcome = run(spec(tmp_path, f"{sys.executable} {path} | cat"))
        assert outcome.exit_status == 0
        runs = outcome.as_record()["test_programs"]["runs"]
        assert runs == [{"program": "tester.py", "exit_code": None, "signal": 15}]

    def test_only_the_outermost_tester_counts(self, tmp_path):
        """A tester that runs a failing tester inside counts once, as itself."""
        inner = tmp_path / "inner"
        inner.mkdir()
        failing = make_tester(inner, 5)
        path = make_tester(
            tmp_path, 0, f"subprocess.run([sys.executable, {str(failing)!r}])"
        )
        outcome = run(spec(tmp_path, f"{sys.executable} {path} | tail -1"))
        runs = outcome.as_record()["test_programs"]["runs"]
        assert runs == [{"program": "tester.py", "exit_code": 0, "signal": None}]

    def test_unwatched_commands_have_no_field(self, tmp_path):
        """Without a picker nothing is opened and nothing recorded."""
        outcome = run(RunSpec(["true"], str(tmp_path), dict(os.environ)))
        assert "test_programs" not in outcome.as_record()

    def test_no_connector_is_said_not_guessed(self, tmp_path, monkeypatch):
        """Where the kernel refuses (no root), the record says why; no runs."""

        def refused():
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(procevents, "listen", refused)
        path = make_tester(tmp_path, 3)
        outcome = run(spec(tmp_path, f"{sys.executable} {path} | tail -1"))
        assert outcome.exit_status == 0
        tests = outcome.as_record()["test_programs"]
        assert tests["runs"] == []
        assert "not readable here: Operation not permitted" in tests["unobserved"]
        assert "need root" in tests["unobserved"]
